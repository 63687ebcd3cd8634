//! The harness's integration tests, in one binary so wasmtime is linked
//! once: the real component in a real wasmtime host, over real HTTP (and
//! TLS) on 127.0.0.1, against the Slack stand-in; `serve` as a child
//! process where the daemon is under test.

mod common;

mod alertmanager;
mod bad_day;
mod browser;
mod cli;
mod concurrency;
mod corpus;
mod delivery;
mod egress;
mod faults;
mod guard;
mod interactions;
mod kapacitor_oracles;
mod no_trap;
mod operate;
mod plugins;
mod pool;
mod postgres;
mod recovery;
mod reliability;
mod render;
mod serve;
mod size;
mod socket_mode;
mod storms;
mod tls;
mod topics;
