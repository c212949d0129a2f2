//! `approval-gate-audit`: verify a JSON-lines audit trail, print a request's history.
//! (Being written.)

fn main() {}
