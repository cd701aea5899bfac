// kafkajs driver for ../capture.py: produce the given messages per codec, then
// run a group consumer on "golden" briefly. Usage: node drive.js PORT SPEC_JSON
'use strict';
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy };

async function main() {
  const port = process.argv[2];
  const spec = JSON.parse(process.argv[3]);
  const kafka = new Kafka({ clientId: 'golden-kafkajs', brokers: [`127.0.0.1:${port}`], logLevel: logLevel.WARN });
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  for (const [codec, msgs] of Object.entries(spec)) {
    await producer.send({
      topic: `golden-${codec}`,
      compression: CODECS[codec],
      messages: msgs.map(([key, value, headers]) => ({
        partition: 0,
        key: key === null ? null : Buffer.from(key, 'hex'),
        value: Buffer.from(value, 'hex'),
        headers: Object.fromEntries(headers.map(([k, v]) => [k, Buffer.from(v, 'hex')])),
      })),
    });
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: 'golden-kafkajs', maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic: 'golden', fromBeginning: true });
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => { joined = true; });
  await consumer.run({ eachMessage: async () => {} });
  const end = Date.now() + 8000;
  while (!joined && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 800));
  await consumer.commitOffsets([{ topic: 'golden', partition: 0, offset: '0' }]);
  await consumer.disconnect();
}

main().catch((e) => { console.error(e); process.exit(1); });
