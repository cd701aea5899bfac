// Kafka's own Java clients of 0.9-0.10 against a broker, for interop/test_old_java_clients.py.
// Compiles against kafka-clients 0.9.0.1 to 0.10.2.2 (only APIs all of them have).
//
//   java OldClient BOOTSTRAP produce TOPIC COUNT CODEC[,CODEC...]
//                                                        keys jk0.., values jv0.., partition 0;
//                                                        one producer per codec, in turn
//   java OldClient BOOTSTRAP assign|group TOPIC COUNT   prints "REC offset key value timestamp"
//                                                        (timestamp -1 before 0.10), then "POS n"
import java.lang.reflect.Method;
import java.util.Collections;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

public class OldClient {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], mode = args[1], topic = args[2];
        int count = Integer.parseInt(args[3]);
        if (mode.equals("produce")) {
            for (String codec : args[4].split(",")) {
                Properties p = new Properties();
                p.put("bootstrap.servers", bootstrap);
                p.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
                p.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
                p.put("compression.type", codec);
                p.put("acks", "all");
                KafkaProducer<String, String> producer = new KafkaProducer<>(p);
                for (int i = 0; i < count; i++) {
                    producer.send(new ProducerRecord<>(topic, 0, "jk" + i, "jv" + i)).get();
                }
                producer.close();
            }
            return;
        }
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", "old-java-" + System.nanoTime());
        c.put("enable.auto.commit", "false");
        c.put("auto.offset.reset", "earliest");
        c.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        c.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c);
        TopicPartition tp = new TopicPartition(topic, 0);
        if (mode.equals("group")) {
            consumer.subscribe(Collections.singletonList(topic));
        } else {
            consumer.assign(Collections.singletonList(tp));
        }
        Method timestamp = null;
        try {
            timestamp = ConsumerRecord.class.getMethod("timestamp");
        } catch (NoSuchMethodException e) {
            // 0.9: no timestamps
        }
        int got = 0;
        long end = System.currentTimeMillis() + 30000;
        while (got < count && System.currentTimeMillis() < end) {
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(500)) {
                got++;
                Object ts = timestamp == null ? -1L : timestamp.invoke(r);
                System.out.println("REC " + r.offset() + " " + text(r.key()) + " " + text(r.value()) + " " + ts);
            }
        }
        if (mode.equals("group")) {
            consumer.commitSync();
        }
        System.out.println("POS " + consumer.position(tp));
        consumer.close();
    }

    private static String text(byte[] b) {
        return b == null ? "null" : new String(b);
    }
}
