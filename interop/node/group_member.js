#!/usr/bin/env node
// One kafkajs consumer-group member for interop/test_groups_kafkajs.py.
//
//   node group_member.js BOOTSTRAP GROUP TOPIC NAME
//
// Subscribes from the earliest offset (when the group has no commit), with
// manual commits. Prints JSON lines on stdout:
//   {"event":"assigned","partitions":[...]}   after each rebalance (GROUP_JOIN)
//   {"event":"record","partition":p,"offset":o,"value":"..."}
//   {"event":"committed"}                     after a "commit" line on stdin
//   {"event":"stopped"}                       after a "stop" line (or stdin EOF): disconnects, leaving the group
'use strict'

const readline = require('readline')
const { Kafka, logLevel } = require('kafkajs')

const [bootstrap, group, topic, name] = process.argv.slice(2)
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function main() {
  const kafka = new Kafka({
    clientId: `kafkapy-groups-${name}`,
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 },
  })
  const consumer = kafka.consumer({
    groupId: group,
    sessionTimeout: 6000,
    rebalanceTimeout: 10000,
    heartbeatInterval: 300,
    metadataMaxAge: 1000,
    maxWaitTimeInMs: 200,
  })
  const pending = new Map() // partition -> next offset to commit
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const parts = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
    out({ event: 'assigned', partitions: parts })
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      out({ event: 'record', partition, offset: Number(message.offset), value: message.value ? message.value.toString() : null })
      pending.set(partition, Number(message.offset) + 1)
    },
  })

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await consumer.disconnect()
    out({ event: 'stopped' })
    process.exit(0)
  }
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', async (line) => {
    const cmd = line.trim()
    if (cmd === 'commit') {
      const offsets = [...pending.entries()].map(([partition, offset]) => ({ topic, partition, offset: String(offset) }))
      await consumer.commitOffsets(offsets)
      out({ event: 'committed', count: offsets.length })
    } else if (cmd === 'stop') {
      await stop()
    }
  })
  rl.on('close', stop)
}

main().catch((e) => {
  out({ event: 'error', error: String(e && e.stack ? e.stack : e) })
  process.exit(1)
})
