// Kafka 1.1's AdminClient against a broker, for interop/test_old_java_admin.py: it speaks
// CreateAcls, DescribeAcls, DeleteAcls v0 (no pattern type: Resource, not ResourcePattern) and
// AlterReplicaLogDirs v0.
//
//   java OldAdmin BOOTSTRAP USER PASSWORD PRINCIPAL DIR DIR
//     creates Read and Write on topic "old-admin" for PRINCIPAL, prints "DESCRIBED name op" for
//     each ACL a filter on PRINCIPAL finds, deletes them, prints "DELETED name op" for each and
//     "LEFT n" for what a second describe finds; then creates topic "old-admin-dirs" (1 partition),
//     moves its replica to the DIR it is not in and prints "MOVED from to" once it is there
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.admin.AdminClient;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.Resource;
import org.apache.kafka.common.resource.ResourceFilter;
import org.apache.kafka.common.resource.ResourceType;

public class OldAdmin {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], user = args[1], password = args[2], principal = args[3];
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("security.protocol", "SASL_PLAINTEXT");
        p.put("sasl.mechanism", "PLAIN");
        p.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\""
                + user + "\" password=\"" + password + "\";");
        try (AdminClient admin = AdminClient.create(p)) {
            Resource topic = new Resource(ResourceType.TOPIC, "old-admin");
            admin.createAcls(Arrays.asList(
                    new AclBinding(topic, new AccessControlEntry(principal, "*", AclOperation.READ, AclPermissionType.ALLOW)),
                    new AclBinding(topic, new AccessControlEntry(principal, "*", AclOperation.WRITE, AclPermissionType.ALLOW))))
                .all().get();
            AclBindingFilter mine = new AclBindingFilter(
                    new ResourceFilter(ResourceType.ANY, null),
                    new AccessControlEntryFilter(principal, null, AclOperation.ANY, AclPermissionType.ANY));
            for (AclBinding b : admin.describeAcls(mine).values().get()) {
                System.out.println("DESCRIBED " + b.resource().name() + " " + b.entry().operation());
            }
            for (AclBinding b : admin.deleteAcls(Collections.singletonList(mine)).all().get()) {
                System.out.println("DELETED " + b.resource().name() + " " + b.entry().operation());
            }
            System.out.println("LEFT " + admin.describeAcls(mine).values().get().size());

            List<String> dirs = Arrays.asList(args[4], args[5]);
            admin.createTopics(Collections.singletonList(new NewTopic("old-admin-dirs", 1, (short) 1))).all().get();
            int node = admin.describeCluster().nodes().get().iterator().next().id();
            TopicPartitionReplica replica = new TopicPartitionReplica("old-admin-dirs", 0, node);
            String from = currentDir(admin, replica, null);
            String to = dirs.get(1 - dirs.indexOf(from));
            admin.alterReplicaLogDirs(Collections.singletonMap(replica, to)).all().get();
            System.out.println("MOVED " + from + " " + currentDir(admin, replica, to));
        }
    }

    // the replica's current dir once it is known (and equal to `want` when given); 30 s at most
    static String currentDir(AdminClient admin, TopicPartitionReplica replica, String want) throws Exception {
        long deadline = System.currentTimeMillis() + 30_000;
        while (true) {
            String dir = admin.describeReplicaLogDirs(Collections.singletonList(replica)).all().get()
                    .get(replica).getCurrentReplicaLogDir();
            if ((dir != null && (want == null || want.equals(dir))) || System.currentTimeMillis() > deadline) {
                return dir;
            }
            Thread.sleep(100);
        }
    }
}
