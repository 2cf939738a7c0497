//! Text that came from clients or ZooKeeper, made safe to show.

/// `text` with every byte that is not printable ASCII written as Redis
/// writes it in its own replies and log (`\n`, `\x00`, `\xc3`...), so that
/// an error never carries control bytes to a client or the log.
pub fn quote(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b' '..=b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn non_printable_bytes_are_quoted() {
        for (raw, quoted) in [
            ("plain /a b", "plain /a b"),
            ("nul\0here", "nul\\x00here"),
            ("line\r\nbreak\t", "line\\r\\nbreak\\t"),
            ("\x7f\x1b", "\\x7f\\x1b"),
            ("ü", "\\xc3\\xbc"),
        ] {
            assert_eq!(quote(raw), quoted);
        }
    }
}
