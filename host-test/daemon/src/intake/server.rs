//! The server: [`serve`] wires and drains, [`Listener`] accepts and hands
//! each connection to the admission gate and hyper, and [`respond`] is the
//! routing table — method and path to the route that answers, the token
//! checked in one place.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::admission::Gate;
use super::answer::{refuse, Answer};
use super::{auth, routes, Front};

/// The largest request head (request line, query, headers) read: a
/// bigger one closes the connection.
const MAX_HEAD_BYTES: usize = 128 * 1024;

/// Serves connections until `stop` resolves, then lets the requests in
/// flight finish (each alert already written is answered) and returns.
pub async fn serve(
    listener: std::net::TcpListener,
    front: Arc<Front>,
    stop: impl Future<Output = ()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let mut server = Listener {
        listener,
        gate: Gate::new(front.limits.max_waiting, front.limits.max_connections),
        verifying: Arc::new(Semaphore::new(front.limits.max_verifications.max(1))),
        graceful: GracefulShutdown::new(),
        front,
    };
    tokio::select! {
        () = server.run() => {}
        () = stop => {}
    }
    server.graceful.shutdown().await;
}

/// What accepts connections, and what every connection shares.
struct Listener {
    listener: tokio::net::TcpListener,
    front: Arc<Front>,
    /// The waiting pool and the serving slots (`admission.rs`).
    gate: Arc<Gate>,
    /// Requests to `/slack/interactions` read and verified at once.
    verifying: Arc<Semaphore>,
    /// Connections being served, for the drain at the end.
    graceful: GracefulShutdown,
}

impl Listener {
    /// Accepts connections as they come, never held back by others.
    async fn run(&mut self) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                // Out of file descriptors, say: wait instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            self.connection(stream);
        }
    }

    /// Serves one connection on a task of its own: it waits in the gate's
    /// pool for each request head, takes a serving slot while the request
    /// is answered, and is closed if the gate sheds it.
    fn connection(&self, stream: TcpStream) {
        let conn = self.gate.arrive();
        let service = {
            let (gate, conn, front) = (self.gate.clone(), conn.clone(), self.front.clone());
            let verifying = self.verifying.clone();
            service_fn(move |req| {
                let (gate, conn, front) = (gate.clone(), conn.clone(), front.clone());
                let verifying = verifying.clone();
                async move {
                    let _serving = gate.head_in(&conn).await;
                    respond(req, front, &verifying).await
                }
            })
        };
        // hyper's header timeout is for the whole head, started afresh for
        // each request (so it also closes an idle keep-alive connection).
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.front.limits.head_timeout)
            // hyper reads a head into a buffer of up to ~400 KiB by default:
            // with the waiting pool full that could be 200 MiB. A head this
            // size still takes a query of several templates at their limit.
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        let connection = self.graceful.watch(connection);
        let gate = self.gate.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                () = conn.shed() => {}
            }
            gate.leave(&conn);
        });
    }
}

/// The routes, each answered by its file under `routes/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `GET /healthz`
    Health,
    /// `POST /slack/interactions`
    Clicks,
    /// `GET /metrics`
    Metrics,
    /// Any other `GET` (`/spool`)
    SpoolPages,
    /// `POST /spool/resend`
    Resend,
    /// `POST /alertmanager`
    Alertmanager,
    /// Any other `POST` (`/`, `/?topic=NAME`)
    Alerts,
    /// Any other method
    NotAllowed,
}

impl Route {
    /// The routing table.
    fn of(method: &Method, path: &str) -> Route {
        match (method, path) {
            (&Method::GET, "/healthz") => Route::Health,
            (&Method::POST, "/slack/interactions") => Route::Clicks,
            (&Method::GET, "/metrics") => Route::Metrics,
            (&Method::GET, _) => Route::SpoolPages,
            (&Method::POST, "/spool/resend") => Route::Resend,
            (&Method::POST, "/alertmanager") => Route::Alertmanager,
            (&Method::POST, _) => Route::Alerts,
            _ => Route::NotAllowed,
        }
    }

    /// Whether a request needs serve's bearer token: every route but
    /// `/healthz` (load balancers) and `/slack/interactions` (Slack cannot
    /// send the token: Slack's request signature authenticates it instead,
    /// and the component verifies it).
    fn needs_token(self) -> bool {
        !matches!(self, Route::Health | Route::Clicks)
    }
}

/// Answers one request: routed, the token checked, then its route's handler.
async fn respond(
    req: Request<hyper::body::Incoming>,
    front: Arc<Front>,
    verifying: &Arc<Semaphore>,
) -> Result<Answer, Infallible> {
    let route = Route::of(req.method(), req.uri().path());
    if route.needs_token() {
        if let Some(refused) = auth::refusal(&front, req.headers()) {
            return Ok(refused);
        }
    }
    Ok(match route {
        Route::Health => routes::health::respond(&front),
        Route::Clicks => routes::clicks::respond(req, &front, verifying).await,
        Route::Metrics => routes::metrics::respond(&front),
        Route::SpoolPages => {
            routes::spool::respond(&front, req.uri().query().unwrap_or_default()).await
        }
        Route::Resend => routes::resend::respond(req, &front).await,
        Route::Alertmanager => routes::alertmanager::respond(req, &front).await,
        Route::Alerts => routes::alerts::respond(req, &front).await,
        Route::NotAllowed => refuse(
            &front,
            StatusCode::METHOD_NOT_ALLOWED,
            "POST an alert, or GET /healthz, /metrics or the spool",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_and_path_has_one_route() {
        let post = |path| Route::of(&Method::POST, path);
        let get = |path| Route::of(&Method::GET, path);
        assert_eq!(get("/healthz"), Route::Health);
        assert_eq!(get("/metrics"), Route::Metrics);
        assert_eq!(get("/spool"), Route::SpoolPages);
        assert_eq!(get("/anything"), Route::SpoolPages);
        assert_eq!(post("/slack/interactions"), Route::Clicks);
        assert_eq!(post("/spool/resend"), Route::Resend);
        assert_eq!(post("/alertmanager"), Route::Alertmanager);
        assert_eq!(post("/"), Route::Alerts);
        assert_eq!(post("/healthz"), Route::Alerts);
        assert_eq!(get("/slack/interactions"), Route::SpoolPages);
        assert_eq!(Route::of(&Method::PUT, "/"), Route::NotAllowed);
        assert_eq!(Route::of(&Method::HEAD, "/healthz"), Route::NotAllowed);
    }

    #[test]
    fn only_health_and_slacks_clicks_go_without_the_token() {
        let open: Vec<Route> = [
            Route::Health,
            Route::Clicks,
            Route::Metrics,
            Route::SpoolPages,
            Route::Resend,
            Route::Alertmanager,
            Route::Alerts,
            Route::NotAllowed,
        ]
        .into_iter()
        .filter(|r| !r.needs_token())
        .collect();
        assert_eq!(open, [Route::Health, Route::Clicks]);
    }
}
