//! Black-box tests: the real server on port 0, a real sled directory in a temp
//! dir, real HTTP. One test binary for all of them.

mod helpers;

mod appends;
mod audit;
mod cli;
mod errors;
mod reads;
mod restart;
mod spec;
