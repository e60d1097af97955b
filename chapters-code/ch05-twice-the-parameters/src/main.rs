//! `ch05-twice-the-parameters`: regenerate chapter 5's tables, figures and numbers.

fn main() -> std::process::ExitCode {
    transformer::chapter::main::<ch05_twice_the_parameters::Settings>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )
}
