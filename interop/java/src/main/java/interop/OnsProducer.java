package interop;

import com.aliyun.openservices.ons.api.Message;
import com.aliyun.openservices.ons.api.ONSFactory;
import com.aliyun.openservices.ons.api.Producer;
import com.aliyun.openservices.ons.api.PropertyKeyConst;
import java.nio.charset.StandardCharsets;
import java.util.Properties;

/**
 * Alibaba's Java producer (ons-client) with exactly-once delivery on,
 * pointed at the open-source name server with made-up credentials (the
 * throwaway broker has no ACL). It adds EXTEND_UNIQ_INFO, the key the Java
 * ExactlyOnceConsumer and our DefaultKey read first.
 */
final class OnsProducer implements AutoCloseable {
    private final Producer producer;

    OnsProducer(String namesrv) {
        Properties p = new Properties();
        p.setProperty(PropertyKeyConst.GROUP_ID, "GID_interop_ons_" + ProcessHandle.current().pid());
        p.setProperty(PropertyKeyConst.NAMESRV_ADDR, namesrv);
        p.setProperty(PropertyKeyConst.AccessKey, "interop");
        p.setProperty(PropertyKeyConst.SecretKey, "interop");
        p.setProperty(PropertyKeyConst.EXACTLYONCE_DELIVERY, "true");
        producer = ONSFactory.createProducer(p);
        producer.start();
    }

    /** Two messages, each sent once. */
    void sendSingles(String topic) {
        for (int i = 0; i < 2; i++) {
            String body = "ons-single-" + i + ":acct-d:" + (1000 * (i + 1));
            Message m = new Message(topic, "", body.getBytes(StandardCharsets.UTF_8));
            Main.sent("ons-exactlyonce", body, producer.send(m).getMessageId());
        }
    }

    /**
     * One message object sent twice, as an application resend after an
     * error. ons-client converts the message anew on every send, so the
     * resend gets a new msgId and EXTEND_UNIQ_INFO: to every consumer it is
     * a second message. Only the client's own send retries keep the key.
     */
    void resendSingle(String topic) {
        String body = "ons-resend:acct-e:7";
        Message m = new Message(topic, "", body.getBytes(StandardCharsets.UTF_8));
        Main.sent("ons-resend", body, producer.send(m).getMessageId());
        Main.sent("ons-resend", body, producer.send(m).getMessageId());
    }

    @Override
    public void close() {
        producer.shutdown();
    }
}
