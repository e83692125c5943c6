//! A job component written against the raw bindings, so that it can
//! return what the SDK never would. Its params are a bare JSON string
//! naming what to return:
//!
//! - `"not-json"`: a result that is not JSON;
//! - `"nul"`: a result with `\u0000` in a string;
//! - `"huge"`: a result of 2 MiB;
//! - `"nul-error"`: a retry error whose message holds a NUL;
//! - `"huge-error"`: a retry error of 5 MiB.

wit_bindgen::generate!({
    world: "job",
    path: "../../../wit",
    generate_all,
});

use exports::spool::job::handler::{Guest, JobError, JobInfo};

struct Raw;

impl Guest for Raw {
    fn run(_job: JobInfo, params: String) -> Result<String, JobError> {
        match params.trim_matches('"') {
            "not-json" => Ok("this is not JSON".to_string()),
            "nul" => Ok(r#"{"text": "a\u0000b"}"#.to_string()),
            "huge" => Ok(format!("\"{}\"", "x".repeat(2 << 20))),
            "nul-error" => Err(JobError::Retry("bad\0byte".to_string())),
            "huge-error" => Err(JobError::Retry("e".repeat(5 << 20))),
            other => Ok(format!("{{\"unknown\": {other:?}}}")),
        }
    }
}

export!(Raw);
