#!/usr/bin/env node
// kafkajs over SASL for interop/test_sasl.py: one JSON request on stdin
// ({bootstrap, mechanism, username, password, topic, group}); creates the topic,
// produces 3 records, consumes them in a group, prints {"values": [...]} or
// {"error": name, "message": ...} (exit 1).
'use strict'

const { Kafka, logLevel } = require('kafkajs')

async function main(req) {
  const kafka = new Kafka({
    clientId: 'kafkapy-interop-kafkajs-sasl',
    brokers: [req.bootstrap],
    ssl: false,
    sasl: { mechanism: req.mechanism, username: req.username, password: req.password },
    logLevel: logLevel.NOTHING,
    retry: { retries: 1 },
  })
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: req.topic, numPartitions: 1 }], waitForLeaders: true })
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic: req.topic, messages: [0, 1, 2].map((i) => ({ value: `s${i}` })) })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: req.group })
  await consumer.connect()
  await consumer.subscribe({ topic: req.topic, fromBeginning: true })
  const values = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out consuming')), 30000)
    consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString())
        if (values.length === 3) {
          clearTimeout(timer)
          resolve()
        }
      },
    })
  })
  await consumer.disconnect()
  return { values }
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
