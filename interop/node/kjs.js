#!/usr/bin/env node
// kafkajs driver for kafkapy's interop suite (interop/test_kafkajs.py and the
// cross-client tests). Reads one JSON request on stdin, prints one JSON
// result on stdout; exits 1 with {"error": ...} on failure.
//
// Binary payloads travel as base64 strings (null stays null). Every client
// object here is kafkajs's own public API except `consume`: kafkajs's
// Consumer always joins a consumer group, which kafkapy does not serve yet
// (issue 4), so `consume` drives kafkajs's own Cluster/Broker classes and
// their Fetch codec directly, with explicit offsets and no group.
'use strict'

const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
}

// kafkajs ships placeholder codecs for snappy and lz4 that throw "not implemented".
function registerCodec(name) {
  if (name === 'snappy') {
    CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
  }
  if (name === 'lz4') {
    const LZ4Codec = require('kafkajs-lz4')
    CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
  }
}

// Consumed batches may use any codec, whatever we produced with.
function registerAllCodecs() {
  for (const name of ['snappy', 'lz4']) {
    try {
      registerCodec(name)
    } catch (e) {
      // absent plugin: batches in that codec fail to decode, which the test reports
    }
  }
}

const b64 = (v) => (v === null || v === undefined ? null : Buffer.from(v).toString('base64'))
const unb64 = (s) => (s === null || s === undefined ? null : Buffer.from(s, 'base64'))

function client(req) {
  return new Kafka({
    clientId: 'kafkapy-interop-kafkajs',
    brokers: [req.bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
  })
}

async function withAdmin(req, fn) {
  const admin = client(req).admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

// kafkajs's own Cluster class (what its producer and consumer are built on).
function lowLevelCluster(req, allowAutoTopicCreation) {
  const Cluster = require('kafkajs/src/cluster')
  const { createLogger, LEVELS } = require('kafkajs/src/loggers')
  const LoggerConsole = require('kafkajs/src/loggers/console')
  const socketFactory = require('kafkajs/src/network/socketFactory')
  return new Cluster({
    logger: createLogger({ level: LEVELS.NOTHING, logCreator: LoggerConsole }),
    socketFactory: socketFactory(),
    brokers: [req.bootstrap],
    clientId: 'kafkapy-interop-kafkajs-cluster',
    connectionTimeout: 5000,
    requestTimeout: 30000,
    enforceRequestTimeout: true,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
    allowAutoTopicCreation,
  })
}

const ops = {
  async create_topic(req) {
    const created = await withAdmin(req, (admin) =>
      admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic: req.topic,
            numPartitions: req.partitions,
            replicationFactor: 1,
            configEntries: Object.entries(req.configs || {}).map(([name, value]) => ({ name, value })),
          },
        ],
      }),
    )
    return { created }
  },

  // kafkajs's admin never asks for auto-creation; its producer's cluster
  // does (allowAutoTopicCreation defaults to true) when it adds a target topic.
  async auto_create(req) {
    const cluster = lowLevelCluster(req, true)
    await cluster.connect()
    try {
      await cluster.addTargetTopic(req.topic)
      return { partitions: cluster.findTopicPartitionMetadata(req.topic).length }
    } finally {
      await cluster.disconnect()
    }
  },

  async list_topics(req) {
    return withAdmin(req, async (admin) => {
      const names = await admin.listTopics()
      const md = await admin.fetchTopicMetadata({ topics: names })
      const topics = {}
      for (const t of md.topics) topics[t.name] = t.partitions.length
      return { topics }
    })
  },

  async produce(req) {
    registerCodec(req.codec)
    const producer = client(req).producer({
      idempotent: false,
      allowAutoTopicCreation: true,
      maxInFlightRequests: 1,
      // the Java-compatible murmur2 partitioner, explicitly (silences the v2 warning)
      createPartitioner: require('kafkajs').Partitioners.DefaultPartitioner,
    })
    await producer.connect()
    try {
      const messages = req.records.map((r) => {
        const m = { key: unb64(r.key), value: unb64(r.value) }
        if (r.headers && r.headers.length) {
          m.headers = {}
          // a repeated header key becomes an array of values (kafkajs 2 writes one header per value)
          for (const [k, v] of r.headers) {
            if (k in m.headers) m.headers[k] = [].concat(m.headers[k], [unb64(v)])
            else m.headers[k] = unb64(v)
          }
        }
        if (r.partition !== null && r.partition !== undefined) m.partition = r.partition
        if (r.timestamp !== null && r.timestamp !== undefined) m.timestamp = String(r.timestamp)
        return m
      })
      const chunk = req.chunk || messages.length
      const results = []
      for (let i = 0; i < messages.length; i += chunk) {
        const res = await producer.send({
          topic: req.topic,
          acks: req.acks === undefined ? -1 : req.acks,
          compression: CODECS[req.codec],
          timeout: 30000,
          messages: messages.slice(i, i + chunk),
        })
        for (const r of res) results.push([r.partition, Number(r.baseOffset), r.errorCode])
      }
      return { batches: results }
    } finally {
      await producer.disconnect()
    }
  },

  // A producer as applications write it: kafkajs's defaults (apart from the
  // partitioner choice, which only silences a warning).
  async produce_defaults(req) {
    const producer = client(req).producer({
      createPartitioner: require('kafkajs').Partitioners.DefaultPartitioner,
    })
    await producer.connect()
    try {
      await producer.send({ topic: req.topic, messages: req.values.map((v) => ({ value: unb64(v) })) })
      return {}
    } finally {
      await producer.disconnect()
    }
  },

  async consume(req) {
    registerAllCodecs()
    const cluster = lowLevelCluster(req, false)
    await cluster.connect()
    try {
      await cluster.addTargetTopic(req.topic)
      const positions = {}
      for (const [p, off] of Object.entries(req.starts)) positions[p] = BigInt(off)
      const partitions = Object.keys(positions).map(Number)
      const byLeader = cluster.findLeaderForPartitions(req.topic, partitions)
      const out = []
      const deadline = Date.now() + req.timeout_ms
      while (out.length < req.count && Date.now() < deadline) {
        for (const [leader, parts] of Object.entries(byLeader)) {
          const broker = await cluster.findBroker({ nodeId: leader })
          const resp = await broker.fetch({
            replicaId: -1,
            isolationLevel: 1,
            maxWaitTime: 500,
            minBytes: 1,
            maxBytes: req.max_bytes,
            topics: [
              {
                topic: req.topic,
                partitions: parts.map((p) => ({
                  partition: p,
                  fetchOffset: positions[p].toString(),
                  maxBytes: req.max_bytes,
                })),
              },
            ],
          })
          for (const t of resp.responses) {
            for (const part of t.partitions) {
              if (part.errorCode !== 0) throw new Error(`fetch error code ${part.errorCode} on partition ${part.partition}`)
              for (const m of part.messages) {
                const off = BigInt(m.offset)
                if (off < positions[part.partition] || m.isControlRecord) continue
                const headers = []
                for (const [k, v] of Object.entries(m.headers || {})) {
                  for (const one of Array.isArray(v) ? v : [v]) headers.push([k, b64(one)])
                }
                out.push({
                  partition: part.partition,
                  offset: Number(off),
                  key: b64(m.key),
                  value: b64(m.value),
                  headers,
                  timestamp: Number(m.timestamp),
                })
                positions[part.partition] = off + 1n
              }
            }
          }
        }
      }
      return { records: out }
    } finally {
      await cluster.disconnect()
    }
  },

  // kafkajs's Consumer: join the group, consume `count` records, commit
  // (autoCommit after each batch and on disconnect), leave.
  async group_consume(req) {
    const consumer = client(req).consumer({ groupId: req.group, sessionTimeout: 10000, heartbeatInterval: 1000 })
    await consumer.connect()
    const out = []
    try {
      await consumer.subscribe({ topics: [req.topic], fromBeginning: true })
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, req.timeout_ms)
        consumer
          .run({
            eachMessage: async ({ partition, message }) => {
              out.push({ partition, offset: Number(message.offset), value: b64(message.value) })
              if (out.length >= req.count) {
                clearTimeout(timer)
                resolve()
              }
            },
          })
          .catch(reject)
      })
      await consumer.stop()
      return { records: out }
    } finally {
      await consumer.disconnect()
    }
  },

  async watermarks(req) {
    return withAdmin(req, async (admin) => {
      const offs = await admin.fetchTopicOffsets(req.topic)
      const p = offs.find((o) => o.partition === req.partition)
      return { low: Number(p.low), high: Number(p.high) }
    })
  },

  async offset_for_time(req) {
    return withAdmin(req, async (admin) => {
      const offs = await admin.fetchTopicOffsetsByTimestamp(req.topic, req.timestamp)
      const p = offs.find((o) => o.partition === req.partition)
      return { offset: Number(p.offset) }
    })
  },

  async describe_configs(req) {
    return withAdmin(req, async (admin) => {
      const res = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: 2 /* TOPIC */, name: req.topic }],
      })
      const configs = {}
      for (const r of res.resources) {
        if (r.errorCode !== 0) throw new Error(`describeConfigs error ${r.errorCode}: ${r.errorMessage}`)
        for (const e of r.configEntries) configs[e.configName] = e.configValue
      }
      return { configs }
    })
  },

  async alter_configs(req) {
    return withAdmin(req, async (admin) => {
      await admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: 2 /* TOPIC */,
            name: req.topic,
            configEntries: Object.entries(req.configs).map(([name, value]) => ({ name, value })),
          },
        ],
      })
      return {}
    })
  },
}

async function main() {
  const chunks = []
  for await (const c of process.stdin) chunks.push(c)
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  const op = ops[req.op]
  if (!op) throw new Error(`unknown op ${req.op}`)
  return op(req)
}

// Exit only once stdout is flushed: a pipe write is asynchronous.
main().then(
  (result) => process.stdout.write(JSON.stringify(result), () => process.exit(0)),
  (err) => {
    const error = { error: `${err.name}: ${err.message}`, type: err.type || null }
    process.stdout.write(JSON.stringify(error), () => process.exit(1))
  },
)
