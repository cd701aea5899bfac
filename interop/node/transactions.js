#!/usr/bin/env node
// kafkajs transactions for interop/test_transactions.py: reads
// {"bootstrap", "topic", "transactionalId", "transactions": [{"values": [...], "commit": bool}],
//  "offsets": {"group", "topic", "partition", "offset"} | null} on stdin; runs each
// transaction (send, optional sendOffsets, commit or abort), prints {} or
// {"error": ...} (exit 1).
'use strict'

const { Kafka, logLevel } = require('kafkajs')

async function main() {
  const req = JSON.parse(require('fs').readFileSync(0, 'utf8'))
  const kafka = new Kafka({ clientId: 'kafkapy-txn', brokers: [req.bootstrap], logLevel: logLevel.NOTHING })
  const producer = kafka.producer({
    transactionalId: req.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
  })
  await producer.connect()
  try {
    for (const t of req.transactions) {
      const txn = await producer.transaction()
      try {
        await txn.send({ topic: req.topic, messages: t.values.map((v, i) => ({ value: v, partition: i % 2 })) })
        if (req.offsets) {
          await txn.sendOffsets({
            consumerGroupId: req.offsets.group,
            topics: [{ topic: req.offsets.topic, partitions: [{ partition: req.offsets.partition, offset: String(req.offsets.offset) }] }],
          })
        }
        if (t.commit) await txn.commit()
        else await txn.abort()
      } catch (e) {
        await txn.abort().catch(() => {})
        throw e
      }
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
