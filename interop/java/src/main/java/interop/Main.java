package interop;

import java.util.List;

/**
 * Sends the interop test's messages to TOPIC through NAMESRV with Java
 * clients and prints one line per send, "scenario TAB body TAB msgId", for
 * the Go test to check what its consumer applied against.
 *
 * <p>Usage: {@code Main NAMESRV TOPIC}. Every body is "name:account:amount",
 * the name unique per message object; a resend of the object repeats the
 * line, with the msgId the client gave it. Exits non-zero if Apache's
 * client broke an expectation (a resend that got a new id).
 */
public final class Main {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Main NAMESRV TOPIC");
            System.exit(2);
        }
        String namesrv = args[0];
        String topic = args[1];
        try (ApacheProducer apache = new ApacheProducer(namesrv)) {
            apache.sendSingles(topic);
            apache.resendSingle(topic);
            apache.sendBatchTwice(topic);
        }
        try (OnsProducer ons = new OnsProducer(namesrv)) {
            ons.sendSingles(topic);
            ons.resendSingle(topic);
        }
    }

    /** Prints one send for the Go test. */
    static void sent(String scenario, String body, String msgId) {
        System.out.println(scenario + "\t" + body + "\t" + msgId);
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static List<String> ids(String joined) {
        return List.of(joined.split(","));
    }

    private Main() {}
}
