//! Errors as one line of text for users: an error and its chain of causes,
//! each cause added once (libraries often repeat their source in their own
//! message).

/// `error: cause: cause...`, skipping a cause whose text is already there.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the kubeconfig")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn causes_are_chained_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            one_line(&Outer(io())),
            "cannot read the kubeconfig: no such file"
        );
        assert_eq!(one_line(&Repeats(io())), "cannot connect: no such file");
    }
}
