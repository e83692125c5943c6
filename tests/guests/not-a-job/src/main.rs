//! A WASI command: a valid component that does not export the job handler.

fn main() {
    println!("I am a command, not a job");
}
