// Runs Kafka's ACL tool (kafka-acls) once per line of standard input, all in one JVM: a JVM start
// per run costs about a second, and infra/secure_kafka.py grants over a dozen sets of ACLs.
// Each line holds one run's arguments, separated by tabs. Launched as a single-file source
// program (`java -cp <kafka libs>/* AclBatch.java`), so nothing is compiled ahead.
// AclCommand.main exits the JVM with status 1 when a run fails, and returns when it succeeds.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

public class AclBatch {
    public static void main(String[] ignored) throws Exception {
        BufferedReader input = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = input.readLine(); line != null; line = input.readLine()) {
            if (!line.isBlank()) {
                org.apache.kafka.tools.AclCommand.main(line.split("\t"));
            }
        }
    }
}
