//! `ch04-zero-shot`: regenerate chapter 4's tables, figures and numbers.

fn main() -> std::process::ExitCode {
    transformer::chapter::main::<ch04_zero_shot::Settings>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )
}
