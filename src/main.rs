//! The `carehub` binary: parse the command line, run, print the error chain, exit.

/// mimalloc instead of the system allocator: with connection tasks and the writer thread
/// allocating at once, glibc's malloc spent a quarter of the ingest CPU in its own locking and
/// consolidation; mimalloc took the MLLP benchmark from ~7,000 to ~10,400 messages/s on this
/// machine (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    carehub::cli::main()
}
