package kafkapy.interop;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * A KafkaShareConsumer (KIP-932) for interop tests.
 *
 * <pre>java kafkapy.interop.ShareConsume BOOTSTRAP GROUP TOPIC COUNT MODE TIMEOUT_MS [lock.ms]</pre>
 *
 * Prints one line per record delivered, {@code record <partition> <offset> <deliveryCount> <value>},
 * then {@code done <n>} after COUNT records were kept (or the timeout). MODE:
 * implicit (acknowledged by the next poll), accept, release-first (released at the first
 * delivery, accepted at the next), release (every delivery), reject, hold (the records of the first poll that returns any,
 * then the JVM halts without acknowledging or leaving).
 */
public final class ShareConsume {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], group = args[1], topic = args[2], mode = args[4];
        int count = Integer.parseInt(args[3]);
        long timeoutMs = Long.parseLong(args[5]);
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        props.put("group.id", group);
        props.put("client.id", "share-" + mode);
        boolean implicit = mode.equals("implicit") || mode.equals("hold");
        props.put("share.acknowledgement.mode", implicit ? "implicit" : "explicit");
        Map<String, Integer> seen = new HashMap<>();
        int kept = 0;
        long deadline = System.currentTimeMillis() + timeoutMs;
        KafkaShareConsumer<String, String> consumer =
            new KafkaShareConsumer<>(props, new StringDeserializer(), new StringDeserializer());
        try {
            consumer.subscribe(List.of(topic));
            System.out.println("subscribed");
            System.out.flush();
            while (kept < count && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    short dc = r.deliveryCount().orElse((short) -1);
                    System.out.println("record " + r.partition() + " " + r.offset() + " " + dc + " " + r.value());
                    switch (mode) {
                        case "implicit":
                        case "hold":
                            kept++;
                            break;
                        case "accept":
                            consumer.acknowledge(r, AcknowledgeType.ACCEPT);
                            kept++;
                            break;
                        case "reject":
                            consumer.acknowledge(r, AcknowledgeType.REJECT);
                            kept++;
                            break;
                        case "release":
                            consumer.acknowledge(r, AcknowledgeType.RELEASE);
                            kept++;
                            break;
                        case "release-first":
                            String k = r.partition() + ":" + r.offset();
                            if (seen.merge(k, 1, Integer::sum) == 1) {
                                consumer.acknowledge(r, AcknowledgeType.RELEASE);
                            } else {
                                consumer.acknowledge(r, AcknowledgeType.ACCEPT);
                                kept++;
                            }
                            break;
                        default:
                            throw new IllegalArgumentException("mode " + mode);
                    }
                }
                if (mode.equals("hold") && !records.isEmpty()) {
                    break; // the next poll would acknowledge them
                }
                if (!implicit && !records.isEmpty()) {
                    consumer.commitSync();
                }
                System.out.flush();
            }
            System.out.println("done " + kept);
            System.out.flush();
            if (mode.equals("hold")) {
                Runtime.getRuntime().halt(0);
            }
            if (mode.equals("implicit")) {
                consumer.commitSync();
            }
        } finally {
            consumer.close();
        }
    }
}
