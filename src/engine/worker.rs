//! A model on its own OS thread, fed through a bounded queue: sequences of concurrent requests are merged into
//! length-sorted batches (bounded wait, bounded tokens), and every caller gets what an unbatched run gives.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{length_sorted_batches, BatchLimits, Codec, Engine, EngineError, Hypotheses};
use crate::generate::attention::AttentionRows;
use crate::generate::SearchOptions;
use crate::metrics::Metrics;

/// How a worker queues and batches.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// A short name for logs, errors and metric labels (`translate`, `summarize`).
    pub name: String,
    /// Most sequences waiting; a request that would exceed it is refused with [`EngineError::Busy`] (a request
    /// larger than the whole queue is still taken when nothing else waits).
    pub max_queue: usize,
    /// How long the first request of a batch waits for others to join it.
    pub batch_wait: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { name: "model".into(), max_queue: 1024, batch_wait: Duration::from_millis(5) }
    }
}

type Reply = Result<Vec<Hypotheses>, EngineError>;

struct Job {
    sources: Vec<Vec<u32>>,
    options: Arc<SearchOptions>,
    reply: mpsc::SyncSender<Reply>,
    deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
}

type AlignReply = Result<Option<Vec<AttentionRows>>, EngineError>;

/// Teacher-forced cross-attention for (source, target) pairs: run as a batch of its own, ahead of generation.
struct AlignJob {
    pairs: Vec<(Vec<u32>, Vec<u32>)>,
    reply: mpsc::SyncSender<AlignReply>,
    deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
}

enum Message {
    Job(Job),
    Align(AlignJob),
    Stop,
}

/// The handle to a model thread. Cheap to share behind an `Arc`; dropping the last one stops the thread after
/// the queued work is done.
pub struct Worker {
    codec: Arc<Codec>,
    config: WorkerConfig,
    sender: Mutex<mpsc::Sender<Message>>,
    queued: Arc<AtomicUsize>,
    /// Exponential moving average of a batch's duration, in microseconds (for `Retry-After`).
    batch_micros: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Moves `engine` onto a new thread.
    pub fn spawn(engine: Engine, config: WorkerConfig, metrics: Arc<Metrics>) -> Self {
        let codec = engine.codec().clone();
        let (sender, receiver) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let batch_micros = Arc::new(AtomicU64::new(0));
        let state = Loop {
            engine,
            limits: BatchLimits::default(),
            config: config.clone(),
            receiver,
            queued: queued.clone(),
            batch_micros: batch_micros.clone(),
            metrics,
            queue: VecDeque::new(),
            jobs: HashMap::new(),
            next_job: 0,
            aligns: VecDeque::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("brief-{}", config.name))
            .spawn(move || state.run())
            .expect("the OS can start a thread");
        Self { codec, config, sender: Mutex::new(sender), queued, batch_micros, thread: Some(thread) }
    }

    pub fn codec(&self) -> &Arc<Codec> {
        &self.codec
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Sequences waiting now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Generates for `sources` with `options` and waits for the result (until `deadline`, if any).
    pub fn generate(&self, sources: Vec<Vec<u32>>, options: SearchOptions, deadline: Option<Instant>) -> Reply {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let options = Arc::new(options);
        self.submit(sources.len(), deadline, |reply, cancelled| {
            Message::Job(Job { sources, options, reply, deadline, cancelled })
        })
    }

    /// The teacher-forced cross-attention of each `(source, target)` pair (see [`Engine::cross_attention`]),
    /// computed on the model's thread; `None` when the model does not align.
    pub fn cross_attention(&self, pairs: Vec<(Vec<u32>, Vec<u32>)>, deadline: Option<Instant>) -> AlignReply {
        if pairs.is_empty() {
            return Ok(Some(Vec::new()));
        }
        self.submit(pairs.len(), deadline, |reply, cancelled| {
            Message::Align(AlignJob { pairs, reply, deadline, cancelled })
        })
    }

    /// Admits `n` sequences, sends the message `make` builds around the reply channel, and waits for the answer.
    fn submit<T>(
        &self,
        n: usize,
        deadline: Option<Instant>,
        make: impl FnOnce(mpsc::SyncSender<Result<T, EngineError>>, Arc<AtomicBool>) -> Message,
    ) -> Result<T, EngineError> {
        let before = self.queued.fetch_add(n, Ordering::SeqCst);
        if before + n > self.config.max_queue && before > 0 {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(self.busy(before));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let cancelled = Arc::new(AtomicBool::new(false));
        let sent = self.sender.lock().unwrap_or_else(|p| p.into_inner()).send(make(reply, cancelled.clone()));
        if sent.is_err() {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(EngineError::Stopped(self.config.name.clone()));
        }
        let received = match deadline {
            Some(deadline) => {
                answer.recv_timeout(deadline.saturating_duration_since(Instant::now())).map_err(|e| match e {
                    mpsc::RecvTimeoutError::Timeout => EngineError::Timeout,
                    mpsc::RecvTimeoutError::Disconnected => EngineError::Stopped(self.config.name.clone()),
                })
            }
            None => answer.recv().map_err(|_| EngineError::Stopped(self.config.name.clone())),
        };
        match received {
            Ok(reply) => reply,
            Err(e) => {
                // The worker drops what is left of a cancelled job.
                cancelled.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    fn busy(&self, queued: usize) -> EngineError {
        let per_batch = Duration::from_micros(self.batch_micros.load(Ordering::Relaxed).max(100_000));
        let batches_ahead = queued.div_ceil(BatchLimits::default().max_sequences.max(1)) as u32;
        let retry_after_secs = (per_batch * batches_ahead).as_secs().clamp(1, 60);
        EngineError::Busy { model: self.config.name.clone(), queued, retry_after_secs }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.sender.lock().unwrap_or_else(|p| p.into_inner()).send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One queued sequence.
struct Item {
    job: u64,
    index: usize,
    ids: Vec<u32>,
}

struct JobState {
    options: Arc<SearchOptions>,
    results: Vec<Option<Hypotheses>>,
    remaining: usize,
    reply: mpsc::SyncSender<Reply>,
    deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
}

/// The thread's side: the queue, the jobs in flight, and the model.
struct Loop {
    engine: Engine,
    limits: BatchLimits,
    config: WorkerConfig,
    receiver: mpsc::Receiver<Message>,
    queued: Arc<AtomicUsize>,
    batch_micros: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    queue: VecDeque<Item>,
    jobs: HashMap<u64, JobState>,
    next_job: u64,
    aligns: VecDeque<AlignJob>,
}

impl Loop {
    fn run(mut self) {
        self.limits = self.engine.batch_limits();
        let mut stopping = false;
        loop {
            if self.queue.is_empty() && self.aligns.is_empty() {
                if stopping {
                    break;
                }
                match self.receiver.recv() {
                    Ok(message) => self.take(message, &mut stopping),
                    Err(_) => stopping = true,
                }
                if self.queue.is_empty() && self.aligns.is_empty() {
                    continue;
                }
            }
            // Give concurrent requests a moment to join this batch, unless it is already full.
            let until = Instant::now() + self.config.batch_wait;
            while !stopping && self.queue.len() < self.limits.max_sequences {
                match self.receiver.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(message) => self.take(message, &mut stopping),
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => stopping = true,
                }
            }
            while let Ok(message) = self.receiver.try_recv() {
                self.take(message, &mut stopping);
            }
            self.drop_abandoned();
            self.run_alignments();
            self.run_one_batch();
            self.metrics.set(
                "brief_queue_depth",
                &[("model", &self.config.name)],
                self.queued.load(Ordering::Relaxed) as f64,
            );
        }
    }

    fn take(&mut self, message: Message, stopping: &mut bool) {
        match message {
            Message::Job(job) => self.add(job),
            Message::Align(job) => self.aligns.push_back(job),
            Message::Stop => *stopping = true,
        }
    }

    /// Answers the waiting alignment jobs, each as its own batches (see [`Engine::cross_attention`]).
    fn run_alignments(&mut self) {
        while let Some(job) = self.aligns.pop_front() {
            self.queued.fetch_sub(job.pairs.len(), Ordering::SeqCst);
            if job.cancelled.load(Ordering::SeqCst) || job.deadline.is_some_and(|d| d <= Instant::now()) {
                let _ = job.reply.try_send(Err(EngineError::Timeout));
                continue;
            }
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.engine.cross_attention(&job.pairs)))
                .unwrap_or_else(|_| {
                    Err(EngineError::Failed(format!("the {} model panicked on an alignment", self.config.name)))
                });
            let _ = job.reply.try_send(result);
        }
    }

    fn add(&mut self, job: Job) {
        let id = self.next_job;
        self.next_job += 1;
        let n = job.sources.len();
        for (index, ids) in job.sources.into_iter().enumerate() {
            self.queue.push_back(Item { job: id, index, ids });
        }
        self.jobs.insert(
            id,
            JobState {
                options: job.options,
                results: vec![None; n],
                remaining: n,
                reply: job.reply,
                deadline: job.deadline,
                cancelled: job.cancelled,
            },
        );
    }

    /// Removes the items of jobs whose caller gave up or whose deadline passed.
    fn drop_abandoned(&mut self) {
        let now = Instant::now();
        let dead: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.cancelled.load(Ordering::SeqCst) || j.deadline.is_some_and(|d| d <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in dead {
            self.fail(id, EngineError::Timeout);
        }
    }

    /// Answers job `id` with `error` and forgets its queued items.
    fn fail(&mut self, id: u64, error: EngineError) {
        let before = self.queue.len();
        self.queue.retain(|item| item.job != id);
        self.queued.fetch_sub(before - self.queue.len(), Ordering::SeqCst);
        if let Some(job) = self.jobs.remove(&id) {
            let _ = job.reply.try_send(Err(error));
        }
    }

    /// Runs the next batch (see [`next_batch`]) and answers completed jobs.
    fn run_one_batch(&mut self) {
        let Some(head) = self.queue.front() else { return };
        let options = self.jobs[&head.job].options.clone();
        let queued: Vec<(&SearchOptions, &[u32])> =
            self.queue.iter().map(|item| (&*self.jobs[&item.job].options, item.ids.as_slice())).collect();
        let positions = next_batch(&queued, self.limits);
        let items: Vec<Item> = positions.iter().rev().filter_map(|&p| self.queue.remove(p)).collect();
        self.queued.fetch_sub(items.len(), Ordering::SeqCst);
        let inputs: Vec<Vec<u32>> = items.iter().map(|i| i.ids.clone()).collect();

        let started = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| self.engine.run_batch(&inputs, &options)))
            .unwrap_or_else(|_| {
                Err(EngineError::Failed(format!("the {} model panicked on a batch", self.config.name)))
            });
        let elapsed = started.elapsed();
        let name = self.config.name.clone();
        let labels = [("model", name.as_str())];
        self.metrics.observe("brief_batch_size", &labels, items.len() as f64);
        self.metrics.observe("brief_batch_duration_seconds", &labels, elapsed.as_secs_f64());
        let previous = self.batch_micros.load(Ordering::Relaxed);
        let now = elapsed.as_micros() as u64;
        self.batch_micros.store(if previous == 0 { now } else { (previous * 7 + now) / 8 }, Ordering::Relaxed);

        match result {
            Ok(outputs) => {
                let tokens: usize = outputs.iter().flatten().map(Vec::len).sum();
                self.metrics.inc("brief_tokens_generated_total", &labels, tokens as f64);
                self.metrics.inc("brief_sequences_generated_total", &labels, outputs.len() as f64);
                for (item, output) in items.into_iter().zip(outputs) {
                    let Some(job) = self.jobs.get_mut(&item.job) else { continue };
                    job.results[item.index] = Some(output);
                    job.remaining -= 1;
                    if job.remaining == 0 {
                        let job = self.jobs.remove(&item.job).expect("the job is present");
                        let results = job.results.into_iter().map(Option::unwrap_or_default).collect();
                        let _ = job.reply.try_send(Ok(results));
                    }
                }
            }
            Err(error) => {
                // Every job with a sequence in the failed batch gets the error.
                let mut failed: Vec<u64> = items.iter().map(|i| i.job).collect();
                failed.dedup();
                let message = error.to_string();
                let client = error.is_client_error();
                for id in failed {
                    let e =
                        if client { EngineError::Input(message.clone()) } else { EngineError::Failed(message.clone()) };
                    self.fail(id, e);
                }
            }
        }
    }
}

/// The queue positions (ascending) of the next batch, given each queued sequence's options and ids: the oldest
/// sequences that share the head's options (at most one batch's worth, so that none waits long), of which the
/// length-sorted batch that fits `limits`. The head is always taken, even with options equal to nothing, not
/// even themselves (a NaN), so that every call makes progress.
fn next_batch(queue: &[(&SearchOptions, &[u32])], limits: BatchLimits) -> Vec<usize> {
    let Some(&(head, _)) = queue.first() else { return Vec::new() };
    let candidates: Vec<usize> = queue
        .iter()
        .enumerate()
        .filter(|&(position, (options, _))| position == 0 || std::ptr::eq(*options, head) || **options == *head)
        .map(|(position, _)| position)
        .take(limits.max_sequences.max(1))
        .collect();
    let sources: Vec<Vec<u32>> = candidates.iter().map(|&p| queue[p].1.to_vec()).collect();
    let mut batches = length_sorted_batches(&sources, limits);
    // The head must be in the batch run now: pick the batch that holds it.
    let with_head = batches.iter().position(|b| b.contains(&0)).unwrap_or(0);
    let chosen = if batches.is_empty() { Vec::new() } else { batches.swap_remove(with_head) };
    let mut positions: Vec<usize> = chosen.iter().map(|&c| candidates[c]).collect();
    positions.sort_unstable();
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(length_penalty: f32) -> SearchOptions {
        SearchOptions { length_penalty, ..SearchOptions::for_tests(2, 8) }
    }

    #[test]
    fn the_head_is_taken_whatever_its_options() {
        let limits = BatchLimits { max_sequences: 4, max_tokens: 100 };
        let (nan, plain, other) = (options(f32::NAN), options(1.0), options(2.0));
        let ids: Vec<Vec<u32>> = [2, 5, 3, 4].iter().map(|&n| vec![1; n]).collect();
        // A NaN equals nothing, not even itself; the head still runs, alone or with its own job's sequences.
        let queue = [(&nan, ids[0].as_slice()), (&plain, &ids[1]), (&nan, &ids[2]), (&nan, &ids[3])];
        assert_eq!(next_batch(&queue, limits), vec![0, 2, 3]);
        let copy = options(f32::NAN);
        assert_eq!(next_batch(&[(&nan, &ids[0]), (&copy, &ids[1])], limits), vec![0]);
        // Otherwise the head's options select the batch.
        let queue = [(&plain, ids[0].as_slice()), (&other, &ids[1]), (&plain, &ids[2])];
        assert_eq!(next_batch(&queue, limits), vec![0, 2]);
        assert!(next_batch(&[], limits).is_empty());
    }

    #[test]
    fn the_head_is_taken_when_longer_sequences_fill_the_first_batch() {
        let limits = BatchLimits { max_sequences: 4, max_tokens: 10 };
        let plain = options(1.0);
        let ids: Vec<Vec<u32>> = [2, 10, 3].iter().map(|&n| vec![1; n]).collect();
        let queue = [(&plain, ids[0].as_slice()), (&plain, &ids[1]), (&plain, &ids[2])];
        assert_eq!(next_batch(&queue, limits), vec![0, 2]);
    }
}
