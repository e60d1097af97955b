//! `ch01-four-masks`: regenerate chapter 1's figures, tables and numbers.

fn main() -> std::process::ExitCode {
    transformer::chapter::main::<ch01_four_masks::Settings>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )
}
