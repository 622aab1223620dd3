//! Black-box tests: the real server on port 0, a real sled directory in a temp
//! dir, real HTTP. One test binary for all of them.

mod hardening;
mod helpers;
mod hostile;

mod abandon;
mod acled;
mod appends;
mod audit;
mod auditor;
mod caching;
mod cli;
mod crash;
mod errors;
mod faults;
mod formats_events;
mod formats_geo;
mod map;
mod merkle;
mod model;
mod old_log;
mod postgres;
mod powercut;
mod process;
mod reads;
mod restart;
mod scaleout;
mod security;
mod spec;
mod stream;
mod strict_json;
mod transparency;
