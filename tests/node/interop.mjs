// Node BullMQ and Bull Board on Postbox's queue, for tests/integration/test_node_interop.py.
//   node interop.mjs read  REDIS_URL QUEUE JOB_ID  counts, one job, the failed jobs
//   node interop.mjs board REDIS_URL QUEUE         Bull Board's API: the queue, its failed jobs
//   node interop.mjs work  REDIS_URL QUEUE JOB_ID  a Node worker: fail the job once, then complete it
//   node interop.mjs bare  REDIS_URL QUEUE JOB_ID  the same worker without the backoff strategy
//                                                  (the job is left active, the worker reports an error)
// Each prints one JSON line. The worker sets what a Node consumer of Postbox jobs must: a
// backoff strategy for Postbox's custom type (README "Node interop").
import { Queue, Worker, QueueEvents } from "bullmq";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import express from "express";

const [command, redisUrl, queueName, jobId] = process.argv.slice(2);
const url = new URL(redisUrl);
const connection = {
  host: url.hostname,
  port: Number(url.port),
  password: decodeURIComponent(url.password) || undefined,
  db: Number(url.pathname.slice(1) || 0),
  maxRetriesPerRequest: null,
};

// Postbox's jobs carry backoff {type: "postbox-jittered-exponential", delay}: exponential
// from `delay`, times a random factor in [0.5, 1).
export function postboxBackoff(attemptsMade, type, err, job) {
  if (type !== "postbox-jittered-exponential") return -1; // not ours: BullMQ fails the job
  const delay = job.opts.backoff.delay;
  return Math.round(delay * 2 ** (attemptsMade - 1) * (0.5 + Math.random() * 0.5));
}

async function read() {
  const queue = new Queue(queueName, { connection });
  const job = await queue.getJob(jobId);
  const failed = await queue.getJobs(["failed"]);
  const out = {
    counts: await queue.getJobCounts(),
    job: job && { id: job.id, name: job.name, data: job.data, opts: job.opts, attemptsMade: job.attemptsMade },
    failed: failed.map((j) => ({ id: j.id, failedReason: j.failedReason })),
  };
  await queue.close();
  return out;
}

async function board() {
  const queue = new Queue(queueName, { connection });
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath("/board");
  createBullBoard({ queues: [new BullMQAdapter(queue)], serverAdapter });
  const app = express();
  app.use("/board", serverAdapter.getRouter());
  const server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const base = `http://127.0.0.1:${server.address().port}/board`;
  const api = await fetch(`${base}/api/queues?activeQueue=${queueName}&status=failed&page=1&jobsPerPage=10`);
  const ui = await fetch(`${base}/`);
  const out = { status: api.status, body: await api.json(), ui: ui.status };
  server.close();
  await queue.close();
  return out;
}

async function work(strategy = postboxBackoff) {
  const queue = new Queue(queueName, { connection });
  const events = new QueueEvents(queueName, { connection });
  await events.waitUntilReady();
  const job = await queue.getJob(jobId);
  const tries = [];
  const worker = new Worker(
    queueName,
    async (taken) => {
      tries.push({ attemptsMade: taken.attemptsMade, at: Date.now() });
      if (taken.attemptsMade === 0) throw new Error("temporary: 451 4.3.0 try again later");
      return { sentBy: "node" };
    },
    { connection, settings: strategy ? { backoffStrategy: strategy } : {} },
  );
  const errors = [];
  worker.on("error", (error) => errors.push(error.message));
  const wait = strategy ? 30_000 : 3_000;
  const result = await job.waitUntilFinished(events, wait).catch((error) => ({ timeout: error.message }));
  const done = await queue.getJob(jobId);
  const out = { result, tries, errors, attemptsMade: done.attemptsMade, state: await done.getState() };
  await Promise.all([worker.close(), events.close()]);
  await queue.close();
  return out;
}

const commands = { read, board, work, bare: () => work(null) };
try {
  console.log(JSON.stringify(await commands[command]()));
  process.exit(0);
} catch (error) {
  console.error(error);
  process.exit(1);
}
