//! Detach keys: docker's notation for the key sequence that leaves an attached terminal, and the
//! scanner that finds it in a stream of input (used by `attach` and by `exec -it`'s relay).

use std::str::FromStr;

/// docker's default detach sequence.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// A detach key sequence in docker's notation: comma-separated keys, each a single character or
/// `ctrl-X` with X one of `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`. The empty string disables
/// detaching (as podman).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

#[derive(Debug, thiserror::Error)]
#[error("invalid detach key {key:?} in {keys:?}: use a single character or ctrl-<a-z, @, [, \\, ], ^, _>, separated by commas (e.g. \"ctrl-p,ctrl-q\")")]
pub struct BadDetachKeys {
    keys: String,
    key: String,
}

impl FromStr for DetachKeys {
    type Err = BadDetachKeys;

    fn from_str(s: &str) -> std::result::Result<Self, BadDetachKeys> {
        if s.is_empty() {
            return Ok(DetachKeys(Vec::new()));
        }
        let bad = |key: &str| BadDetachKeys {
            keys: s.to_owned(),
            key: key.to_owned(),
        };
        s.split(',')
            .map(|key| {
                let lower = key.to_ascii_lowercase();
                match lower.strip_prefix("ctrl-") {
                    Some(c) if c.len() == 1 => match c.as_bytes()[0] {
                        b @ b'a'..=b'z' => Ok(b - b'a' + 1),
                        b @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_') => Ok(b - b'@'),
                        _ => Err(bad(key)),
                    },
                    Some(_) => Err(bad(key)),
                    None if key.len() == 1 && key.is_ascii() => Ok(key.as_bytes()[0]),
                    None => Err(bad(key)),
                }
            })
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map(DetachKeys)
    }
}

impl Default for DetachKeys {
    fn default() -> Self {
        DEFAULT_DETACH_KEYS.parse().expect("the default parses")
    }
}

/// Finds the detach sequence in a stream of input. Bytes that start the sequence are held back
/// until the sequence completes (then dropped) or breaks (then passed on), as docker does.
#[derive(Debug)]
pub(crate) struct Scanner {
    keys: Vec<u8>,
    matched: usize,
}

impl Scanner {
    pub(crate) fn new(keys: DetachKeys) -> Scanner {
        Scanner {
            keys: keys.0,
            matched: 0,
        }
    }

    /// Appends the bytes of `input` to pass on to `out`; true when the sequence completed.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return false;
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = usize::from(b == self.keys[0]);
            if self.matched == 0 {
                out.push(b);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Vec<u8> {
        s.parse::<DetachKeys>().unwrap().0
    }

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(keys("ctrl-p,ctrl-q"), vec![0x10, 0x11]);
        assert_eq!(DetachKeys::default().0, vec![0x10, 0x11]);
        assert_eq!(
            keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_"),
            vec![0, 27, 28, 29, 30, 31]
        );
        assert_eq!(keys("a,CTRL-A,Z"), vec![b'a', 1, b'Z']);
        assert_eq!(keys(""), Vec::<u8>::new());
        for bad in ["ctrl-", "ctrl-pq", "ctrl-1", "ab", "ctrl-p,,ctrl-q", "é"] {
            let e = bad.parse::<DetachKeys>().unwrap_err().to_string();
            assert!(e.contains("invalid detach key"), "{bad}: {e}");
        }
    }

    fn scan(keys: &str, chunks: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut s = Scanner::new(keys.parse().unwrap());
        let mut out = Vec::new();
        for c in chunks {
            if s.feed(c, &mut out) {
                return (out, true);
            }
        }
        (out, false)
    }

    #[test]
    fn the_sequence_detaches_and_is_swallowed() {
        assert_eq!(
            scan("ctrl-p,ctrl-q", &[b"ls\x10\x11rest"]),
            (b"ls".to_vec(), true)
        );
        // Split across reads.
        assert_eq!(
            scan("ctrl-p,ctrl-q", &[b"a\x10", b"\x11"]),
            (b"a".to_vec(), true)
        );
    }

    #[test]
    fn a_broken_sequence_passes_through() {
        assert_eq!(
            scan("ctrl-p,ctrl-q", &[b"\x10z\n"]),
            (b"\x10z\n".to_vec(), false)
        );
        // Ctrl-P Ctrl-P Ctrl-Q: the first is passed on, the next two detach.
        assert_eq!(
            scan("ctrl-p,ctrl-q", &[b"\x10\x10\x11"]),
            (b"\x10".to_vec(), true)
        );
        // A held prefix stays held across reads until it breaks.
        assert_eq!(
            scan("ctrl-p,ctrl-q", &[b"\x10", b"x"]),
            (b"\x10x".to_vec(), false)
        );
        assert_eq!(scan("a,b,c", &[b"abab", b"c"]), (b"ab".to_vec(), true));
        assert_eq!(scan("", &[b"\x10\x11"]), (b"\x10\x11".to_vec(), false));
    }
}
