#!/usr/bin/env node
// kafkajs idempotent producer for tests/server/test_idempotence.py: reads
// {"bootstrap", "topic", "values": [utf-8 strings]} on stdin, sends them with
// `idempotent: true` (kafkajs requires one request in flight), prints {} or
// {"error": ...} (exit 1).
'use strict'

const { Kafka, logLevel } = require('kafkajs')

async function main() {
  const req = JSON.parse(require('fs').readFileSync(0, 'utf8'))
  const kafka = new Kafka({ clientId: 'kafkapy-idempotent', brokers: [req.bootstrap], logLevel: logLevel.NOTHING })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  try {
    for (let i = 0; i < req.values.length; i += 10) {
      const messages = req.values.slice(i, i + 10).map((v) => ({ value: v }))
      await producer.send({ topic: req.topic, acks: -1, messages })
    }
  } finally {
    await producer.disconnect()
  }
}

main().then(
  () => process.stdout.write('{}\n'),
  (e) => {
    process.stdout.write(JSON.stringify({ error: String((e && e.stack) || e) }) + '\n')
    process.exit(1)
  },
)
