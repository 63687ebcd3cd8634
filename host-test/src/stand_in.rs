//! What the stand-ins share: a server running on a thread of its own, with
//! a current-thread runtime, until it is told to stop (when its owner is
//! dropped) or it returns.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// A server on its own thread; stopped and joined when dropped.
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Runs `serve(stopped)` on a thread named `name`; `stopped` resolves
    /// when the `Running` is dropped.
    pub(crate) fn start<F, Fut>(name: &str, serve: F) -> std::io::Result<Running>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let Ok(runtime) = runtime else { return };
                runtime.block_on(serve(stopped));
            })?;
        Ok(Running {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Blocks until the server returns by itself.
    pub(crate) fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
