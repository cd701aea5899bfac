// A Java producer (Apache Kafka 4.3.1 clients) that keeps producing for SECONDS from its first
// acknowledged record, one record every 100 ms, each acknowledged before the next: run by
// interop/test_sasl.py across several SASL re-authentications (KIP-368). Launched as a single source
// file: java -cp <jars> ReauthProducer.java BOOTSTRAP TOPIC SECONDS MECHANISM JAAS.
// Prints one line: "sent=N acked=N errors=N first_error=...".

import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class ReauthProducer {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("security.protocol", "SASL_PLAINTEXT");
        props.put("sasl.mechanism", args[3]);
        props.put("sasl.jaas.config", args[4]);
        props.put("key.serializer", ByteArraySerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        props.put("acks", "all");
        props.put("delivery.timeout.ms", "10000");
        props.put("request.timeout.ms", "5000");
        long window = TimeUnit.SECONDS.toNanos(Long.parseLong(args[2]));
        long end = Long.MAX_VALUE;  // SECONDS counted from the first acknowledgement (JVM start-up excluded)
        int sent = 0, acked = 0, errors = 0;
        String firstError = "";
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            while (System.nanoTime() < end) {
                if (sent == 1) end = System.nanoTime() + window;
                byte[] value = ("r" + sent).getBytes();
                sent++;
                try {
                    producer.send(new ProducerRecord<>(args[1], value)).get(10, TimeUnit.SECONDS);
                    acked++;
                } catch (Exception e) {
                    errors++;
                    if (firstError.isEmpty()) firstError = String.valueOf(e);
                }
                Thread.sleep(100);
            }
        }
        System.out.println("sent=" + sent + " acked=" + acked + " errors=" + errors + " first_error=" + firstError);
    }
}
