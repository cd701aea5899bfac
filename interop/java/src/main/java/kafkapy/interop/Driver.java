package kafkapy.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TopicListing;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Apache Kafka's Java clients driven by kafkapy's interop tests.
 *
 * <p>Usage:
 * <pre>
 *   java -cp CP kafkapy.interop.Driver serve          # JSON request per stdin line, JSON answer per stdout line
 *   java -cp CP kafkapy.interop.Driver OP '{json}'     # one request, one answer
 * </pre>
 *
 * <p>Every request is an object {"op": ..., "bootstrap": "host:port", ...}; every answer
 * is one line: the op's result object, or {"error": message, "exception": class name of
 * the root cause}. Binary keys, values and header values travel as base64 (null stays
 * null). One JVM serves a whole test module, so the ~1 s JVM start is paid once.
 */
public final class Driver {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Base64.Encoder B64 = Base64.getEncoder();
    private static final Base64.Decoder UNB64 = Base64.getDecoder();

    private Driver() {}

    public static void main(String[] args) throws Exception {
        // Answers go to the real stdout; anything a library prints goes to stderr.
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true, StandardCharsets.UTF_8);
        System.setOut(System.err);
        if (args.length == 0) {
            System.err.println("usage: Driver serve | Driver OP JSON");
            System.exit(2);
        }
        if (args[0].equals("serve")) {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            String line;
            while ((line = in.readLine()) != null) {
                if (line.isBlank()) continue;
                out.println(handle(line));
                out.flush();
            }
            return;
        }
        ObjectNode req = args.length > 1 ? (ObjectNode) JSON.readTree(args[1]) : JSON.createObjectNode();
        req.put("op", args[0]);
        String answer = handle(JSON.writeValueAsString(req));
        out.println(answer);
        out.flush();
        System.exit(answer.startsWith("{\"error\"") ? 1 : 0);
    }

    static String handle(String line) {
        ObjectNode result;
        try {
            JsonNode req = JSON.readTree(line);
            result = dispatch(req.path("op").asText(), req);
        } catch (Throwable t) {
            result = error(t);
        }
        try {
            return JSON.writeValueAsString(result);
        } catch (Exception e) {
            return "{\"error\":\"cannot serialise the answer\"}";
        }
    }

    static ObjectNode error(Throwable t) {
        Throwable root = t;
        while ((root instanceof ExecutionException || root.getClass().getName().endsWith("KafkaException"))
                && root.getCause() != null) {
            root = root.getCause();
        }
        ObjectNode e = JSON.createObjectNode();
        e.put("error", String.valueOf(root.getMessage()));
        e.put("exception", root.getClass().getName());
        e.put("outer", t.getClass().getName() + ": " + t.getMessage());
        return e;
    }

    static ObjectNode dispatch(String op, JsonNode r) throws Exception {
        switch (op) {
            case "ping": return JSON.createObjectNode().put("pong", true);
            case "create_topics": return createTopics(r);
            case "list_topics": return listTopics(r);
            case "describe_topics": return describeTopics(r);
            case "delete_topics": return deleteTopics(r);
            case "create_partitions": return createPartitions(r);
            case "describe_configs": return describeConfigs(r);
            case "alter_configs": return alterConfigs(r);
            case "describe_cluster": return describeCluster(r);
            case "list_offsets": return listOffsets(r);
            case "list_groups": return listGroups(r);
            case "describe_groups": return describeGroups(r);
            case "group_offsets": return groupOffsets(r);
            case "partitions_for": return partitionsFor(r);
            case "produce": return produce(r);
            case "consume": return consume(r);
            case "group_consume": return groupConsume(r);
            case "offsets_for_times": return offsetsForTimes(r);
            case "seek_to_time": return seekToTime(r);
            case "txn_init": return txnInit(r);
            case "txn_send": return txnSend(r);
            case "txn_end": return txnEnd(r);
            case "txn_close": return txnClose(r);
            case "read_to_end": return readToEnd(r);
            case "eos_transform": return eosTransform(r);
            case "admin_misc": return adminMisc(r);
            default: throw new IllegalArgumentException("unknown op " + op);
        }
    }

    // ------------------------------------------------------------------ helpers

    static String b64(byte[] b) {
        return b == null ? null : B64.encodeToString(b);
    }

    static byte[] unb64(JsonNode n) {
        return n == null || n.isNull() || n.isMissingNode() ? null : UNB64.decode(n.asText());
    }

    static Map<String, String> stringMap(JsonNode n) {
        Map<String, String> m = new HashMap<>();
        if (n != null && n.isObject()) {
            Iterator<Map.Entry<String, JsonNode>> it = n.fields();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                m.put(e.getKey(), e.getValue().isNull() ? null : e.getValue().asText());
            }
        }
        return m;
    }

    static List<String> strings(JsonNode n) {
        List<String> l = new ArrayList<>();
        if (n != null && n.isArray()) n.forEach(x -> l.add(x.asText()));
        return l;
    }

    /** Client configuration: bootstrap plus the request's "config" object (Kafka's own keys). */
    static Properties props(JsonNode r, Map<String, String> defaults) {
        Properties p = new Properties();
        p.putAll(defaults);
        p.put("bootstrap.servers", r.path("bootstrap").asText());
        stringMap(r.get("config")).forEach((k, v) -> {
            if (v == null) p.remove(k); else p.put(k, v);
        });
        return p;
    }

    static Admin admin(JsonNode r) {
        return Admin.create(props(r, Map.of(
                AdminClientConfig.CLIENT_ID_CONFIG, "kafkapy-interop-java-admin",
                AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000",
                AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000")));
    }

    static long timeoutMs(JsonNode r, long dflt) {
        return r.path("timeout_ms").asLong(dflt);
    }

    static ArrayNode errorsArray(Map<String, ? extends Future<?>> futures) {
        ArrayNode a = JSON.createArrayNode();
        for (Map.Entry<String, ? extends Future<?>> e : new TreeMap<String, Future<?>>(futures).entrySet()) {
            ObjectNode o = a.addObject();
            o.put("name", e.getKey());
            try {
                e.getValue().get(60, TimeUnit.SECONDS);
                o.putNull("exception");
            } catch (Exception ex) {
                ObjectNode err = error(ex);
                o.put("exception", err.get("exception").asText());
                o.put("error", err.get("error").asText());
            }
        }
        return a;
    }

    // ------------------------------------------------------------------ admin

    static ObjectNode createTopics(JsonNode r) throws Exception {
        List<NewTopic> topics = new ArrayList<>();
        for (JsonNode t : r.path("topics")) {
            int partitions = t.path("partitions").asInt(-1);
            short rf = (short) t.path("replication_factor").asInt(-1);
            NewTopic nt = new NewTopic(t.path("name").asText(),
                    partitions < 0 ? java.util.Optional.empty() : java.util.Optional.of(partitions),
                    rf < 0 ? java.util.Optional.empty() : java.util.Optional.of(rf));
            nt.configs(stringMap(t.get("configs")));
            topics.add(nt);
        }
        try (Admin a = admin(r)) {
            var opts = new org.apache.kafka.clients.admin.CreateTopicsOptions().validateOnly(r.path("validate_only").asBoolean(false));
            var res = a.createTopics(topics, opts);
            ObjectNode out = JSON.createObjectNode();
            out.set("results", errorsArray(res.values()));
            ObjectNode info = out.putObject("created");
            for (NewTopic t : topics) {
                try {
                    ObjectNode ti = info.putObject(t.name());
                    ti.put("partitions", res.numPartitions(t.name()).get());
                    ti.put("replication_factor", res.replicationFactor(t.name()).get());
                    ti.put("topic_id", String.valueOf(res.topicId(t.name()).get()));
                    ObjectNode cfg = ti.putObject("configs");
                    Config c = res.config(t.name()).get();
                    if (c != null) for (ConfigEntry e : c.entries()) cfg.put(e.name(), e.value());
                } catch (Exception ignored) {
                    info.remove(t.name());
                }
            }
            return out;
        }
    }

    static ObjectNode listTopics(JsonNode r) throws Exception {
        try (Admin a = admin(r)) {
            var opts = new org.apache.kafka.clients.admin.ListTopicsOptions().listInternal(r.path("internal").asBoolean(false));
            Collection<TopicListing> listings = a.listTopics(opts).listings().get();
            List<String> names = new ArrayList<>();
            for (TopicListing l : listings) names.add(l.name());
            Map<String, TopicDescription> d = a.describeTopics(names).allTopicNames().get();
            ObjectNode out = JSON.createObjectNode();
            ObjectNode topics = out.putObject("topics");
            for (TopicDescription t : new TreeMap<>(d).values()) topics.put(t.name(), t.partitions().size());
            return out;
        }
    }

    static ObjectNode describeTopics(JsonNode r) throws Exception {
        try (Admin a = admin(r)) {
            var res = a.describeTopics(strings(r.get("topics"))).topicNameValues();
            ObjectNode out = JSON.createObjectNode();
            ObjectNode topics = out.putObject("topics");
            out.set("results", errorsArray(res));
            for (Map.Entry<String, ? extends Future<TopicDescription>> e : res.entrySet()) {
                TopicDescription t;
                try {
                    t = e.getValue().get();
                } catch (Exception ex) {
                    continue;
                }
                ObjectNode o = topics.putObject(t.name());
                o.put("internal", t.isInternal());
                o.put("topic_id", String.valueOf(t.topicId()));
                ArrayNode ps = o.putArray("partitions");
                for (TopicPartitionInfo p : t.partitions()) {
                    ObjectNode po = ps.addObject();
                    po.put("partition", p.partition());
                    po.put("leader", p.leader() == null ? -1 : p.leader().id());
                    ArrayNode rs = po.putArray("replicas");
                    p.replicas().forEach(n -> rs.add(n.id()));
                    ArrayNode is = po.putArray("isr");
                    p.isr().forEach(n -> is.add(n.id()));
                }
            }
            return out;
        }
    }

    static ObjectNode deleteTopics(JsonNode r) throws Exception {
        try (Admin a = admin(r)) {
            ObjectNode out = JSON.createObjectNode();
            out.set("results", errorsArray(a.deleteTopics(strings(r.get("topics"))).topicNameValues()));
            return out;
        }
    }

    static ObjectNode createPartitions(JsonNode r) throws Exception {
        try (Admin a = admin(r)) {
            Map<String, NewPartitions> m = new HashMap<>();
            stringMap(r.get("counts")).forEach((k, v) -> m.put(k, NewPartitions.increaseTo(Integer.parseInt(v))));
            ObjectNode out = JSON.createObjectNode();
            out.set("results", errorsArray(a.createPartitions(m).values()));
            return out;
        }
    }

    static ObjectNode describeConfigs(JsonNode r) throws Exception {
        ConfigResource.Type type = ConfigResource.Type.valueOf(r.path("type").asText("TOPIC"));
        String name = r.path("topic").asText(r.path("name").asText());
        ConfigResource res = new ConfigResource(type, name);
        try (Admin a = admin(r)) {
            Config c = a.describeConfigs(List.of(res)).all().get().get(res);
            ObjectNode out = JSON.createObjectNode();
            ObjectNode cfg = out.putObject("configs");
            ObjectNode src = out.putObject("sources");
            for (ConfigEntry e : c.entries()) {
                cfg.put(e.name(), e.value());
                src.put(e.name(), String.valueOf(e.source()));
            }
            return out;
        }
    }

    static ObjectNode alterConfigs(JsonNode r) throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.valueOf(r.path("type").asText("TOPIC")),
                r.path("topic").asText(r.path("name").asText()));
        List<AlterConfigOp> ops = new ArrayList<>();
        stringMap(r.get("configs")).forEach((k, v) -> ops.add(v == null
                ? new AlterConfigOp(new ConfigEntry(k, ""), AlterConfigOp.OpType.DELETE)
                : new AlterConfigOp(new ConfigEntry(k, v), AlterConfigOp.OpType.SET)));
        try (Admin a = admin(r)) {
            a.incrementalAlterConfigs(Map.of(res, ops)).all().get();
            return JSON.createObjectNode().put("altered", true);
        }
    }

    static ObjectNode node(Node n) {
        ObjectNode o = JSON.createObjectNode();
        o.put("id", n.id());
        o.put("host", n.host());
        o.put("port", n.port());
        o.put("rack", n.rack());
        return o;
    }

    static ObjectNode describeCluster(JsonNode r) throws Exception {
        try (Admin a = admin(r)) {
            DescribeClusterResult d = a.describeCluster();
            ObjectNode out = JSON.createObjectNode();
            out.put("cluster_id", d.clusterId().get());
            Node c = d.controller().get();
            out.set("controller", c == null ? null : node(c));
            ArrayNode ns = out.putArray("nodes");
            for (Node n : d.nodes().get()) ns.add(node(n));
            return out;
        }
    }

    static OffsetSpec spec(String s) {
        switch (s) {
            case "earliest": return OffsetSpec.earliest();
            case "latest": return OffsetSpec.latest();
            case "max_timestamp": return OffsetSpec.maxTimestamp();
            default: return OffsetSpec.forTimestamp(Long.parseLong(s));
        }
    }

    /** {"topic", "partitions": [..], "spec": "earliest"|"latest"|"max_timestamp"|"<timestamp ms>"} */
    static ObjectNode listOffsets(JsonNode r) throws Exception {
        String topic = r.path("topic").asText();
        OffsetSpec spec = spec(r.path("spec").asText("latest"));
        Map<TopicPartition, OffsetSpec> req = new HashMap<>();
        for (JsonNode p : r.path("partitions")) req.put(new TopicPartition(topic, p.asInt()), spec);
        try (Admin a = admin(r)) {
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> res = a.listOffsets(req).all().get();
            ObjectNode out = JSON.createObjectNode();
            ObjectNode offs = out.putObject("offsets");
            ObjectNode stamps = out.putObject("timestamps");
            for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e : res.entrySet()) {
                offs.put(String.valueOf(e.getKey().partition()), e.getValue().offset());
                stamps.put(String.valueOf(e.getKey().partition()), e.getValue().timestamp());
            }
            return out;
        }
    }

    static ObjectNode listGroups(JsonNode r) throws Exception {
        try (Admin a = admin(r)) {
            ObjectNode out = JSON.createObjectNode();
            ArrayNode gs = out.putArray("groups");
            @SuppressWarnings("deprecation")
            Collection<ConsumerGroupListing> all = a.listConsumerGroups().all().get();
            for (ConsumerGroupListing g : all) {
                ObjectNode o = gs.addObject();
                o.put("group_id", g.groupId());
                o.put("simple", g.isSimpleConsumerGroup());
                o.put("state", g.groupState().map(String::valueOf).orElse(null));
                o.put("type", g.type().map(String::valueOf).orElse(null));
            }
            return out;
        }
    }

    static ObjectNode describeGroups(JsonNode r) throws Exception {
        try (Admin a = admin(r)) {
            Map<String, ConsumerGroupDescription> d = a.describeConsumerGroups(strings(r.get("groups"))).all().get();
            ObjectNode out = JSON.createObjectNode();
            ObjectNode gs = out.putObject("groups");
            for (ConsumerGroupDescription g : d.values()) {
                ObjectNode o = gs.putObject(g.groupId());
                o.put("state", String.valueOf(g.groupState()));
                o.put("type", String.valueOf(g.type()));
                o.put("protocol", g.partitionAssignor());
                o.put("simple", g.isSimpleConsumerGroup());
                o.put("coordinator", g.coordinator() == null ? -1 : g.coordinator().id());
                ArrayNode ms = o.putArray("members");
                for (MemberDescription m : g.members()) {
                    ObjectNode mo = ms.addObject();
                    mo.put("member_id", m.consumerId());
                    mo.put("client_id", m.clientId());
                    mo.put("host", m.host());
                    ArrayNode parts = mo.putArray("assignment");
                    for (TopicPartition tp : m.assignment().topicPartitions()) parts.add(tp.topic() + ":" + tp.partition());
                }
            }
            return out;
        }
    }

    static ObjectNode groupOffsets(JsonNode r) throws Exception {
        try (Admin a = admin(r)) {
            Map<TopicPartition, OffsetAndMetadata> m =
                    a.listConsumerGroupOffsets(r.path("group").asText()).partitionsToOffsetAndMetadata().get();
            ObjectNode out = JSON.createObjectNode();
            ObjectNode offs = out.putObject("offsets");
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : m.entrySet()) {
                if (e.getValue() != null) offs.put(e.getKey().topic() + ":" + e.getKey().partition(), e.getValue().offset());
            }
            return out;
        }
    }

    // ------------------------------------------------------------------ producer

    static final Map<String, String> BYTES_SERDE = Map.of(
            ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName(),
            ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

    /** Producer metadata asks the broker to auto-create the topic (allow.auto.create.topics defaults to true). */
    static ObjectNode partitionsFor(JsonNode r) throws Exception {
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props(r, BYTES_SERDE))) {
            List<PartitionInfo> ps = p.partitionsFor(r.path("topic").asText());
            return JSON.createObjectNode().put("partitions", ps.size());
        }
    }

    /**
     * {"topic", "records": [{"key", "value", "headers": [[k, v]], "partition", "timestamp"}],
     *  "config": {...}, "defaults": bool, "flush_every": n}
     * With "defaults": true only bootstrap.servers and the serializers are set: the producer
     * is the idempotent acks=all producer every Java application gets by default.
     */
    static ObjectNode produce(JsonNode r) throws Exception {
        Map<String, String> defaults = new HashMap<>(BYTES_SERDE);
        if (!r.path("defaults").asBoolean(false)) {
            defaults.put(ProducerConfig.CLIENT_ID_CONFIG, "kafkapy-interop-java-producer");
            defaults.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            defaults.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
            defaults.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "30000");
        }
        String topic = r.path("topic").asText();
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        long t0 = System.nanoTime();
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props(r, defaults))) {
            for (JsonNode rec : r.path("records")) {
                RecordHeaders headers = new RecordHeaders();
                for (JsonNode h : rec.path("headers")) headers.add(h.get(0).asText(), unb64(h.get(1)));
                Integer partition = rec.path("partition").isNumber() ? rec.get("partition").asInt() : null;
                Long ts = rec.path("timestamp").isNumber() ? rec.get("timestamp").asLong() : null;
                futures.add(p.send(new ProducerRecord<>(topic, partition, ts, unb64(rec.get("key")), unb64(rec.get("value")), headers)));
            }
            p.flush();
            ObjectNode out = JSON.createObjectNode();
            ArrayNode offs = out.putArray("offsets");
            ArrayNode errs = out.putArray("errors");
            for (Future<RecordMetadata> f : futures) {
                try {
                    RecordMetadata md = f.get(60, TimeUnit.SECONDS);
                    offs.addArray().add(md.partition()).add(md.hasOffset() ? md.offset() : -1).add(md.timestamp());
                } catch (Exception ex) {
                    offs.addNull();
                    errs.add(error(ex));
                }
            }
            out.put("elapsed_ms", (System.nanoTime() - t0) / 1_000_000);
            return out;
        }
    }

    // ------------------------------------------------------------------ consumer

    static Map<String, String> consumerDefaults(String group) {
        Map<String, String> d = new HashMap<>();
        d.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        d.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        d.put(ConsumerConfig.CLIENT_ID_CONFIG, "kafkapy-interop-java-consumer");
        d.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (group != null) d.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        else d.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return d;
    }

    static ObjectNode recordJson(ConsumerRecord<byte[], byte[]> rec) {
        ObjectNode o = JSON.createObjectNode();
        o.put("topic", rec.topic());
        o.put("partition", rec.partition());
        o.put("offset", rec.offset());
        o.put("key", b64(rec.key()));
        o.put("value", b64(rec.value()));
        o.put("timestamp", rec.timestamp());
        o.put("timestamp_type", rec.timestampType().name);
        o.put("leader_epoch", rec.leaderEpoch().orElse(-1));
        ArrayNode hs = o.putArray("headers");
        for (Header h : rec.headers()) hs.addArray().add(h.key()).add(b64(h.value()));
        return o;
    }

    /** Poll until `count` records or the deadline. */
    static ArrayNode pollRecords(KafkaConsumer<byte[], byte[]> c, int count, long timeoutMs) {
        ArrayNode records = JSON.createArrayNode();
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (records.size() < count && System.currentTimeMillis() < deadline) {
            ConsumerRecords<byte[], byte[]> batch = c.poll(Duration.ofMillis(200));
            for (ConsumerRecord<byte[], byte[]> rec : batch) records.add(recordJson(rec));
        }
        return records;
    }

    /** {"topic", "starts": {"partition": offset}, "count", "timeout_ms", "config"}: assign + seek, no group. */
    static ObjectNode consume(JsonNode r) throws Exception {
        String topic = r.path("topic").asText();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(props(r, consumerDefaults(null)))) {
            Map<String, String> starts = stringMap(r.get("starts"));
            List<TopicPartition> tps = new ArrayList<>();
            for (String p : starts.keySet()) tps.add(new TopicPartition(topic, Integer.parseInt(p)));
            c.assign(tps);
            for (TopicPartition tp : tps) c.seek(tp, Long.parseLong(starts.get(String.valueOf(tp.partition()))));
            ObjectNode out = JSON.createObjectNode();
            out.set("records", pollRecords(c, r.path("count").asInt(), timeoutMs(r, 30000)));
            return out;
        }
    }

    /**
     * subscribe() in a group, read `count` records, then commit ("commit": "sync" (default),
     * "async", "auto" = enable.auto.commit with close() committing, "none"), then leave.
     * "config" may set group.protocol=consumer (KIP-848) or the assignor.
     */
    static ObjectNode groupConsume(JsonNode r) throws Exception {
        String commit = r.path("commit").asText("sync");
        Map<String, String> d = consumerDefaults(r.path("group").asText());
        d.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, String.valueOf(commit.equals("auto")));
        d.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "500");
        ObjectNode out = JSON.createObjectNode();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(props(r, d))) {
            c.subscribe(strings(r.get("topics")).isEmpty() ? List.of(r.path("topic").asText()) : strings(r.get("topics")));
            ArrayNode records = pollRecords(c, r.path("count").asInt(), timeoutMs(r, 40000));
            out.set("records", records);
            ArrayNode assigned = out.putArray("assignment");
            for (TopicPartition tp : c.assignment()) assigned.add(tp.topic() + ":" + tp.partition());
            if (commit.equals("sync")) c.commitSync(Duration.ofSeconds(30));
            if (commit.equals("async")) {
                final Exception[] failure = {null};
                final boolean[] done = {false};
                c.commitAsync((offsets, ex) -> { failure[0] = ex; done[0] = true; });
                long deadline = System.currentTimeMillis() + 30000;
                while (!done[0] && System.currentTimeMillis() < deadline) c.poll(Duration.ofMillis(100));
                if (failure[0] != null) throw failure[0];
            }
            ObjectNode committed = out.putObject("committed");
            Set<TopicPartition> parts = c.assignment();
            if (!commit.equals("auto")) {
                for (Map.Entry<TopicPartition, OffsetAndMetadata> e : c.committed(parts, Duration.ofSeconds(30)).entrySet()) {
                    if (e.getValue() != null) committed.put(e.getKey().topic() + ":" + e.getKey().partition(), e.getValue().offset());
                }
            }
            out.put("group_metadata_member", c.groupMetadata().memberId());
            out.put("generation", c.groupMetadata().generationId());
        }
        return out;
    }

    /** offsetsForTimes: {"topic", "partitions", "timestamp"} -> {"offsets": {"p": offset or -1}}. */
    static ObjectNode offsetsForTimes(JsonNode r) throws Exception {
        String topic = r.path("topic").asText();
        long ts = r.path("timestamp").asLong();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(props(r, consumerDefaults(null)))) {
            Map<TopicPartition, Long> q = new HashMap<>();
            for (JsonNode p : r.path("partitions")) q.put(new TopicPartition(topic, p.asInt()), ts);
            Map<TopicPartition, OffsetAndTimestamp> res = c.offsetsForTimes(q, Duration.ofSeconds(30));
            ObjectNode out = JSON.createObjectNode();
            ObjectNode offs = out.putObject("offsets");
            for (TopicPartition tp : q.keySet()) {
                OffsetAndTimestamp o = res.get(tp);
                offs.put(String.valueOf(tp.partition()), o == null ? -1 : o.offset());
            }
            ObjectNode ends = out.putObject("end");
            ObjectNode begins = out.putObject("beginning");
            c.endOffsets(q.keySet(), Duration.ofSeconds(30)).forEach((tp, o) -> ends.put(String.valueOf(tp.partition()), o));
            c.beginningOffsets(q.keySet(), Duration.ofSeconds(30)).forEach((tp, o) -> begins.put(String.valueOf(tp.partition()), o));
            return out;
        }
    }

    /** Seek by timestamp (offsetsForTimes then seek) and read `count` records from there. */
    static ObjectNode seekToTime(JsonNode r) throws Exception {
        String topic = r.path("topic").asText();
        TopicPartition tp = new TopicPartition(topic, r.path("partition").asInt(0));
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(props(r, consumerDefaults(null)))) {
            c.assign(List.of(tp));
            OffsetAndTimestamp o = c.offsetsForTimes(Map.of(tp, r.path("timestamp").asLong()), Duration.ofSeconds(30)).get(tp);
            ObjectNode out = JSON.createObjectNode();
            if (o == null) {
                c.seekToEnd(List.of(tp));
                out.put("offset", -1);
            } else {
                c.seek(tp, o.offset());
                out.put("offset", o.offset());
            }
            out.set("records", pollRecords(c, r.path("count").asInt(), timeoutMs(r, 30000)));
            return out;
        }
    }

    // ------------------------------------------------------------------ transactions

    /** Transactional producers kept open between requests (a zombie and its successor), by handle. */
    static final Map<String, KafkaProducer<byte[], byte[]>> PRODUCERS = new HashMap<>();

    static ProducerRecord<byte[], byte[]> producerRecord(String topic, JsonNode rec) {
        RecordHeaders headers = new RecordHeaders();
        for (JsonNode h : rec.path("headers")) headers.add(h.get(0).asText(), unb64(h.get(1)));
        Integer partition = rec.path("partition").isNumber() ? rec.get("partition").asInt() : null;
        return new ProducerRecord<>(topic, partition, null, unb64(rec.get("key")), unb64(rec.get("value")), headers);
    }

    static KafkaProducer<byte[], byte[]> transactionalProducer(JsonNode r) {
        Map<String, String> d = new HashMap<>(BYTES_SERDE);
        d.put(ProducerConfig.CLIENT_ID_CONFIG, "kafkapy-interop-java-txn");
        d.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, r.path("transactional_id").asText());
        d.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        d.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
        d.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "30000");
        d.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props(r, d));
        try {
            p.initTransactions();
        } catch (RuntimeException e) {
            p.close(Duration.ZERO);
            throw e;
        }
        return p;
    }

    static KafkaProducer<byte[], byte[]> producerFor(JsonNode r) {
        KafkaProducer<byte[], byte[]> p = PRODUCERS.get(r.path("handle").asText());
        if (p == null) throw new IllegalArgumentException("no transactional producer " + r.path("handle").asText());
        return p;
    }

    /** {"handle", "transactional_id", "config"}: a producer, initTransactions() done (fences older instances). */
    static ObjectNode txnInit(JsonNode r) throws Exception {
        String handle = r.path("handle").asText();
        if (PRODUCERS.containsKey(handle)) throw new IllegalArgumentException("handle in use: " + handle);
        PRODUCERS.put(handle, transactionalProducer(r));
        return JSON.createObjectNode().put("handle", handle);
    }

    /** {"handle", "topic", "records", "begin": true}: beginTransaction() (unless begin=false), send, flush. */
    static ObjectNode txnSend(JsonNode r) throws Exception {
        KafkaProducer<byte[], byte[]> p = producerFor(r);
        if (r.path("begin").asBoolean(true)) p.beginTransaction();
        String topic = r.path("topic").asText();
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (JsonNode rec : r.path("records")) futures.add(p.send(producerRecord(topic, rec)));
        p.flush();
        ObjectNode out = JSON.createObjectNode();
        ArrayNode offs = out.putArray("offsets");
        for (Future<RecordMetadata> f : futures) {
            RecordMetadata md = f.get(60, TimeUnit.SECONDS);
            offs.addArray().add(md.partition()).add(md.offset());
        }
        return out;
    }

    /** {"handle", "commit": bool}: commitTransaction() or abortTransaction(). */
    static ObjectNode txnEnd(JsonNode r) throws Exception {
        KafkaProducer<byte[], byte[]> p = producerFor(r);
        boolean commit = r.path("commit").asBoolean(true);
        if (commit) p.commitTransaction(); else p.abortTransaction();
        return JSON.createObjectNode().put(commit ? "committed" : "aborted", true);
    }

    static ObjectNode txnClose(JsonNode r) {
        KafkaProducer<byte[], byte[]> p = PRODUCERS.remove(r.path("handle").asText());
        if (p != null) p.close(Duration.ofSeconds(r.path("timeout_ms").asLong(5000) / 1000));
        return JSON.createObjectNode().put("closed", p != null);
    }

    /**
     * {"topic", "config"}: every partition from the beginning up to its end offset as the consumer's
     * isolation level sees it (endOffsets is the last stable offset under read_committed), in offset
     * order per partition. {"records", "end": {"p": offset}}.
     */
    static ObjectNode readToEnd(JsonNode r) throws Exception {
        String topic = r.path("topic").asText();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(props(r, consumerDefaults(null)))) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(30))) tps.add(new TopicPartition(topic, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            ArrayNode records = JSON.createArrayNode();
            long deadline = System.currentTimeMillis() + timeoutMs(r, 30000);
            while (System.currentTimeMillis() < deadline) {
                boolean done = true;
                for (TopicPartition tp : tps) done &= c.position(tp, Duration.ofSeconds(30)) >= end.get(tp);
                if (done) break;
                for (ConsumerRecord<byte[], byte[]> rec : c.poll(Duration.ofMillis(200))) records.add(recordJson(rec));
            }
            ObjectNode out = JSON.createObjectNode();
            out.set("records", records);
            ObjectNode ends = out.putObject("end");
            end.forEach((tp, o) -> ends.put(String.valueOf(tp.partition()), o));
            ObjectNode positions = out.putObject("positions");
            for (TopicPartition tp : tps) positions.put(String.valueOf(tp.partition()), c.position(tp));
            return out;
        }
    }

    /**
     * Consume-transform-produce, exactly once: a read_committed group consumer on "input" reads
     * `count` records; one transaction writes each value with "suffix" appended to "output" (same
     * key and partition) and sendOffsetsToTransaction(next offsets, consumer.groupMetadata());
     * then commitTransaction() ("commit": true) or abortTransaction(). The consumer leaves the group
     * without committing by itself. {"consumed", "produced", "offsets": {"topic:p": next offset}}.
     */
    static ObjectNode eosTransform(JsonNode r) throws Exception {
        String input = r.path("input").asText();
        String output = r.path("output").asText();
        byte[] suffix = r.path("suffix").asText("").getBytes(StandardCharsets.UTF_8);
        Map<String, String> cd = consumerDefaults(r.path("group").asText());
        cd.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cd.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        ObjectNode out = JSON.createObjectNode();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(props(r, cd));
             KafkaProducer<byte[], byte[]> p = transactionalProducer(r)) {
            c.subscribe(List.of(input));
            List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + timeoutMs(r, 40000);
            int count = r.path("count").asInt();
            while (got.size() < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> rec : c.poll(Duration.ofMillis(200))) got.add(rec);
            }
            ArrayNode consumed = out.putArray("consumed");
            for (ConsumerRecord<byte[], byte[]> rec : got) consumed.add(recordJson(rec));
            Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
            p.beginTransaction();
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (ConsumerRecord<byte[], byte[]> rec : got) {
                byte[] v = rec.value() == null ? new byte[0] : rec.value();
                byte[] nv = java.util.Arrays.copyOf(v, v.length + suffix.length);
                System.arraycopy(suffix, 0, nv, v.length, suffix.length);
                futures.add(p.send(new ProducerRecord<>(output, rec.partition(), rec.key(), nv)));
                next.put(new TopicPartition(rec.topic(), rec.partition()), new OffsetAndMetadata(rec.offset() + 1));
            }
            p.sendOffsetsToTransaction(next, c.groupMetadata());
            p.flush();
            ArrayNode produced = out.putArray("produced");
            for (Future<RecordMetadata> f : futures) {
                RecordMetadata md = f.get(60, TimeUnit.SECONDS);
                produced.addArray().add(md.partition()).add(md.offset());
            }
            if (r.path("commit").asBoolean(true)) p.commitTransaction(); else p.abortTransaction();
            ObjectNode offs = out.putObject("offsets");
            next.forEach((tp, o) -> offs.put(tp.topic() + ":" + tp.partition(), o.offset()));
        }
        return out;
    }

    // ------------------------------------------------------------------ admin: everything else

    interface AdminCall {
        Object run(Admin a) throws Exception;
    }

    /** One Admin call: {"ok": what it returned, as text} or {"exception": root cause class}. */
    static ObjectNode attempt(Admin a, AdminCall c) {
        ObjectNode o = JSON.createObjectNode();
        try {
            o.put("ok", String.valueOf(c.run(a)));
        } catch (Exception e) {
            ObjectNode err = error(e);
            o.put("exception", err.get("exception").asText());
            o.put("error", err.get("error").asText());
        }
        return o;
    }

    /**
     * Admin calls for features a broker may lack (quotas, SCRAM, reassignments, delegation tokens,
     * KRaft quorum, leader elections): each call's result or exception, by name.
     * {"topic"}: the partition (0) electLeaders asks about.
     */
    static ObjectNode adminMisc(JsonNode r) throws Exception {
        TopicPartition tp = new TopicPartition(r.path("topic").asText(), 0);
        try (Admin a = admin(r)) {
            ObjectNode out = JSON.createObjectNode();
            out.set("client_quotas", attempt(a, x -> x.describeClientQuotas(
                    org.apache.kafka.common.quota.ClientQuotaFilter.all()).entities().get()));
            out.set("scram_all", attempt(a, x -> x.describeUserScramCredentials().all().get()));
            out.set("scram_alice", attempt(a, x -> x.describeUserScramCredentials(List.of("alice")).description("alice").get()));
            out.set("reassignments", attempt(a, x -> x.listPartitionReassignments().reassignments().get()));
            out.set("delegation_tokens", attempt(a, x -> x.describeDelegationToken().delegationTokens().get()));
            out.set("metadata_quorum", attempt(a, x -> x.describeMetadataQuorum().quorumInfo().get().leaderId()));
            out.set("elect_leaders", attempt(a, x -> x.electLeaders(org.apache.kafka.common.ElectionType.PREFERRED,
                    Set.of(tp)).partitions().get().get(tp)));
            return out;
        }
    }

    static <T> List<T> list(Collection<T> c) {
        return c == null ? Collections.emptyList() : new ArrayList<>(c);
    }
}
