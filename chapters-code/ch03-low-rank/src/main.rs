//! `ch03-low-rank`: run every experiment of chapter 3 and write the book's outputs.
//! (One point of the sweep: the `probe` binary.)

fn main() -> std::process::ExitCode {
    transformer::chapter::main::<ch03_low_rank::RunConfig>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )
}
