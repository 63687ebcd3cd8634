//! Many alerts in flight: a fixed set of workers, each with its own
//! configured instance (made from the shared `InstancePre`, so cheap),
//! fed from a bounded queue. Memory stays bounded: workers × the per-instance
//! cap, plus the queue. A worker whose instance traps makes a new one and
//! goes on.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};

use alert_handler_host::{AlertEvent, Delivery, HandlerError, Runtime};

/// What became of one alert: the outer error is the host's (a trap, which
/// stopped that instance), the inner one the handler's.
pub type Outcome = Result<Result<Delivery, HandlerError>>;

struct Job {
    event: AlertEvent,
    options: Vec<(String, String)>,
    reply: mpsc::Sender<Outcome>,
}

/// The queue was full; the alert is handed back.
#[derive(Debug)]
pub struct Full(pub AlertEvent);

/// A pool of configured instances.
pub struct Pool {
    queue: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `workers` instances configured with `config`, behind a queue of
    /// `queue` alerts. The configuration is checked once, up front.
    pub fn start(
        runtime: &Runtime,
        config: &str,
        workers: usize,
        queue: usize,
    ) -> Result<Result<Pool, HandlerError>> {
        let mut first = runtime.instantiate()?;
        if let Err(e) = first.configure(config)? {
            return Ok(Err(e));
        }
        let (sender, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        let mut handles = Vec::with_capacity(workers);
        let mut first = Some(first);
        for n in 0..workers.max(1) {
            let plugin = match first.take() {
                Some(p) => p,
                None => runtime.configured(config)?,
            };
            let (runtime, config, receiver) =
                (runtime.clone(), config.to_string(), receiver.clone());
            let handle = std::thread::Builder::new()
                .name(format!("alert-worker-{n}"))
                .spawn(move || {
                    let mut plugin = plugin;
                    loop {
                        let job = match receiver.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(job) => job,
                            Err(_) => return, // the pool is closing
                        };
                        let outcome = plugin.handle_alert(&job.event, &job.options);
                        if outcome.is_err() {
                            // A trap stopped this instance; serve on with a new one.
                            match runtime.configured(&config) {
                                Ok(fresh) => plugin = fresh,
                                Err(e) => {
                                    let _ = job.reply.send(Err(e));
                                    return;
                                }
                            }
                        }
                        let _ = job.reply.send(outcome);
                    }
                })?;
            handles.push(handle);
        }
        Ok(Ok(Pool {
            queue: Some(sender),
            workers: handles,
        }))
    }

    /// Queues an alert, waiting while the queue is full.
    pub fn submit(
        &self,
        event: AlertEvent,
        options: Vec<(String, String)>,
    ) -> Result<Receiver<Outcome>> {
        let (reply, answer) = mpsc::channel();
        self.sender()?
            .send(Job {
                event,
                options,
                reply,
            })
            .map_err(|_| anyhow!("the pool's workers have stopped"))?;
        Ok(answer)
    }

    /// Queues an alert if there is room now.
    pub fn try_submit(
        &self,
        event: AlertEvent,
        options: Vec<(String, String)>,
    ) -> Result<Result<Receiver<Outcome>, Full>> {
        let (reply, answer) = mpsc::channel();
        match self.sender()?.try_send(Job {
            event,
            options,
            reply,
        }) {
            Ok(()) => Ok(Ok(answer)),
            Err(TrySendError::Full(job)) => Ok(Err(Full(job.event))),
            Err(TrySendError::Disconnected(_)) => Err(anyhow!("the pool's workers have stopped")),
        }
    }

    fn sender(&self) -> Result<&SyncSender<Job>> {
        self.queue
            .as_ref()
            .ok_or_else(|| anyhow!("the pool is closed"))
    }
}

impl Drop for Pool {
    /// Lets the workers finish what is queued, then stops them.
    fn drop(&mut self) {
        self.queue.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}
