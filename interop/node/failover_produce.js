#!/usr/bin/env node
// kafkajs idempotent producer for interop/test_cluster_failover.py, kept
// running through a leader failover. The first stdin line is
// {"bootstrap": "h:p,h:p", "topic", "partition", "prefix", "chunk"}; it then
// sends values `${prefix}${i}` (i = 0, 1, ...) in chunks with acks=-1 and
// prints one JSON line per chunk: {"first": i, "n": n, "base": offset} when
// acknowledged, {"first": i, "n": n, "error": ...} when not. A "stop" line (or
// the end of stdin) ends it after the chunk in flight: {"done": true}.
'use strict'

const { Kafka, logLevel } = require('kafkajs')
const readline = require('readline')

async function main() {
  const lines = readline.createInterface({ input: process.stdin })
  let req = null
  let stop = false
  const started = new Promise((resolve) => {
    lines.on('line', (line) => {
      if (req === null) {
        req = JSON.parse(line)
        resolve()
      } else if (line.trim() === 'stop') {
        stop = true
      }
    })
    lines.on('close', () => {
      stop = true
      resolve()
    })
  })
  await started
  if (req === null) return
  const kafka = new Kafka({
    clientId: 'kafkapy-failover-kafkajs',
    brokers: req.bootstrap.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 30, initialRetryTime: 100, maxRetryTime: 1000 },
  })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  let i = 0
  try {
    while (!stop) {
      const messages = []
      for (let k = 0; k < req.chunk; k++) messages.push({ value: `${req.prefix}${i + k}`, partition: req.partition })
      try {
        const res = await producer.send({ topic: req.topic, acks: -1, messages })
        process.stdout.write(JSON.stringify({ first: i, n: messages.length, base: Number(res[0].baseOffset) }) + '\n')
      } catch (e) {
        process.stdout.write(JSON.stringify({ first: i, n: messages.length, error: String(e) }) + '\n')
      }
      i += messages.length
    }
  } finally {
    await producer.disconnect()
  }
}

main().then(
  () => {
    process.stdout.write('{"done": true}\n')
    process.exit(0)
  },
  (e) => {
    process.stdout.write(JSON.stringify({ error: String((e && e.stack) || e), fatal: true }) + '\n')
    process.exit(1)
  },
)
