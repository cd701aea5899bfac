#!/usr/bin/env node
// kafkajs over SSL / SASL_PLAINTEXT / SASL_SSL for interop/test_security_matrix.py. One JSON
// request on stdin: {bootstrap, topic, group, ssl: null | {ca, cert?, key?},
// sasl: null | {mechanism, username, password} | {mechanism: "oauthbearer", token}}.
// Creates the topic (admin), produces 3 records, consumes them in a group, lists the
// group's committed offsets (admin); prints {"values": [...], "committed": n} or
// {"error": name, "message": ...} (exit 1).
'use strict'

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

function kafkaOf(req) {
  let ssl = false
  if (req.ssl) {
    ssl = { ca: [fs.readFileSync(req.ssl.ca, 'utf8')] }
    if (req.ssl.cert) {
      ssl.cert = fs.readFileSync(req.ssl.cert, 'utf8')
      ssl.key = fs.readFileSync(req.ssl.key, 'utf8')
    }
  }
  let sasl
  if (req.sasl && req.sasl.mechanism === 'oauthbearer') {
    const token = req.sasl.token
    sasl = { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: token }) }
  } else if (req.sasl) {
    sasl = req.sasl
  }
  return new Kafka({
    clientId: 'kafkapy-interop-kafkajs-secure',
    brokers: [req.bootstrap],
    ssl,
    sasl,
    logLevel: logLevel.NOTHING,
    retry: { retries: 1 },
  })
}

async function main(req) {
  const kafka = kafkaOf(req)
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: req.topic, numPartitions: 1 }], waitForLeaders: true })
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic: req.topic, messages: [0, 1, 2].map((i) => ({ value: `m${i}` })) })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: req.group })
  await consumer.connect()
  await consumer.subscribe({ topic: req.topic, fromBeginning: true })
  const values = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out consuming')), 30000)
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        values.push(message.value.toString())
        await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
        if (values.length === 3) {
          clearTimeout(timer)
          resolve()
        }
      },
    })
  })
  await consumer.disconnect()
  const offsets = await admin.fetchOffsets({ groupId: req.group, topics: [req.topic] })
  await admin.disconnect()
  return { values, committed: Number(offsets[0].partitions[0].offset) }
}

let input = ''
process.stdin.on('data', (d) => (input += d))
process.stdin.on('end', () => {
  main(JSON.parse(input))
    .then((out) => {
      process.stdout.write(JSON.stringify(out) + '\n')
      process.exit(0)
    })
    .catch((e) => {
      process.stdout.write(JSON.stringify({ error: e.name, message: e.message }) + '\n')
      process.exit(1)
    })
})
