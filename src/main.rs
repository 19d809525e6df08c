//! The `carehub` binary: parse the command line, run, print the error chain, exit.

fn main() -> std::process::ExitCode {
    carehub::cli::main()
}
