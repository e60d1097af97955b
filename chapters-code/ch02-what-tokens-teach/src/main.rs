//! `ch02-what-tokens-teach`: regenerate chapter 2's corpus statistics, tokenizer,
//! figures, tables and numbers.

fn main() -> std::process::ExitCode {
    transformer::chapter::main::<ch02_what_tokens_teach::Settings>(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )
}
