package interop;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageAccessor;
import org.apache.rocketmq.common.message.MessageClientIDSetter;
import org.apache.rocketmq.common.message.MessageConst;

/**
 * Apache RocketMQ's own Java producer (rocketmq-client, the broker's
 * release). It sets UNIQ_KEY (the msgId) once per Message object, batch
 * members included, and keeps it when the same object is sent again: that is
 * what its own send retries do, and what an application resend of the same
 * object does. Such a resend stores a second copy on the broker with the
 * same UNIQ_KEY.
 */
final class ApacheProducer implements AutoCloseable {
    private final DefaultMQProducer producer;

    ApacheProducer(String namesrv) throws Exception {
        producer = new DefaultMQProducer("interop_apache_" + ProcessHandle.current().pid());
        producer.setNamesrvAddr(namesrv);
        producer.setInstanceName("interop-apache-" + ProcessHandle.current().pid());
        producer.start();
    }

    /** Three messages, each sent once. */
    void sendSingles(String topic) throws Exception {
        for (int i = 0; i < 3; i++) {
            Message m = message(topic, "apache-single-" + i, "acct-a", 1 + i);
            Main.sent("apache-single", body(m), send(m).getMsgId());
        }
    }

    /** One message sent twice, as a producer resend: the same msgId. */
    void resendSingle(String topic) throws Exception {
        Message m = message(topic, "apache-resend", "acct-b", 10);
        String first = send(m).getMsgId();
        String second = send(m).getMsgId();
        Main.check(first.equals(second), "resend got a new msgId: " + first + " then " + second);
        Main.sent("apache-resend", body(m), first);
        Main.sent("apache-resend", body(m), second);
    }

    /**
     * A batch of three sent twice. The client gives each member a UNIQ_KEY
     * and the batch one of its own, new on every send; a 5.x broker stores
     * each member with the batch's properties after its own, so consumers
     * (Java's MessageDecoder and Go's keep the last value of a property) see
     * every member of one send with the batch's id. Each member therefore carries its own id in
     * EXTEND_UNIQ_INFO too, which the batch's properties do not override:
     * the key the Java ExactlyOnceConsumer and DefaultKey read first.
     */
    void sendBatchTwice(String topic) throws Exception {
        List<Message> batch = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Message m = message(topic, "apache-batch-" + i, "acct-c", 100 * (i + 1));
            MessageClientIDSetter.setUniqID(m);
            MessageAccessor.putProperty(m, MessageConst.PROPERTY_EXTEND_UNIQ_INFO, MessageClientIDSetter.getUniqID(m));
            batch.add(m);
        }
        String first = check(producer.send(batch)).getMsgId();
        String second = check(producer.send(batch)).getMsgId();
        Main.check(first.equals(second), "batch resend got new msgIds: " + first + " then " + second);
        List<String> ids = Main.ids(first);
        Main.check(ids.size() == batch.size(), "batch msgIds " + first);
        for (int round = 0; round < 2; round++) {
            for (int i = 0; i < batch.size(); i++) {
                Main.sent("apache-batch", body(batch.get(i)), ids.get(i));
            }
        }
    }

    private SendResult send(Message m) throws Exception {
        return check(producer.send(m));
    }

    private static SendResult check(SendResult r) {
        Main.check(r.getSendStatus() == SendStatus.SEND_OK, "send: " + r);
        return r;
    }

    private static Message message(String topic, String name, String account, int amount) {
        return new Message(topic, (name + ":" + account + ":" + amount).getBytes(StandardCharsets.UTF_8));
    }

    private static String body(Message m) {
        return new String(m.getBody(), StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
        producer.shutdown();
    }
}
