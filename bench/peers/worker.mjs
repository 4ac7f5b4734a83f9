// The peer Postbox is measured against: a plain Node BullMQ worker sending with nodemailer.
// Jobs are {from, to, subject, text}; nodemailer builds each message and sends it over a
// pooled SMTP transport. Settings come from the environment the benchmark passes.
import { Worker } from "bullmq";
import nodemailer from "nodemailer";

const env = process.env;
const transport = nodemailer.createTransport({
  pool: true,
  host: env.SMTP_HOST ?? "127.0.0.1",
  port: Number(env.SMTP_PORT),
  secure: false,
  ignoreTLS: true,
  maxConnections: Number(env.MAX_CONNECTIONS ?? 10),
  maxMessages: Infinity,
});

const worker = new Worker(
  env.QUEUE_NAME,
  async (job) => {
    const info = await transport.sendMail(job.data);
    return { smtp_reply: info.response, message_id: info.messageId };
  },
  {
    connection: {
      host: env.REDIS_HOST ?? "127.0.0.1",
      port: Number(env.REDIS_PORT),
      password: env.REDIS_PASSWORD || undefined,
      maxRetriesPerRequest: null,
    },
    concurrency: Number(env.CONCURRENCY ?? 50),
  },
);
worker.on("failed", (job, err) => console.error(`job ${job?.id} failed: ${err.message}`));
await worker.waitUntilReady();
console.log(`peer worker ready (concurrency ${worker.opts.concurrency})`);

const stop = async () => {
  await worker.close();
  transport.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
