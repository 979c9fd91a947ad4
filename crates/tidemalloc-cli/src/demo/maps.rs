//! `/proc/self/maps` read and parsed without allocating: the demonstration looks at its own
//! heap between steps, and a `Vec` or `String` here would put chunks of its own between the
//! blocks it is showing (procfs, used by `run` for other processes, allocates).

use crate::bytes::Bytes;
use core::fmt;

/// Room for the mappings of this small program (it has a few dozen).
const MAX_MAPPINGS: usize = 512;
/// Room for the text of /proc/self/maps (under 100 bytes a line).
const MAX_TEXT: usize = 128 * 1024;

/// What a mapping holds, as far as its name tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Heap,
    Anonymous,
    Stack,
    File,
    Kernel,
}

/// One line of /proc/self/maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    pub perms: [u8; 4],
    pub kind: Kind,
}

impl Mapping {
    const EMPTY: Mapping = Mapping {
        start: 0,
        end: 0,
        perms: *b"----",
        kind: Kind::Kernel,
    };

    /// Parses `start-end perms offset dev inode [name]`.
    pub fn parse(line: &[u8]) -> Option<Mapping> {
        let text = core::str::from_utf8(line).ok()?;
        let mut fields = text.split_ascii_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let perms: [u8; 4] = fields.next()?.as_bytes().try_into().ok()?;
        // offset, device, inode; the name, if any, follows.
        let name = fields.nth(3).unwrap_or("");
        let kind = match name {
            "" => Kind::Anonymous,
            "[heap]" => Kind::Heap,
            "[stack]" => Kind::Stack,
            n if n.starts_with('[') => Kind::Kernel,
            _ => Kind::File,
        };
        Some(Mapping {
            start: usize::from_str_radix(start, 16).ok()?,
            end: usize::from_str_radix(end, 16).ok()?,
            perms,
            kind,
        })
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn contains(&self, addr: usize) -> bool {
        (self.start..self.end).contains(&addr)
    }
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let perms = core::str::from_utf8(&self.perms).unwrap_or("????");
        let kind = match self.kind {
            Kind::Heap => "[heap]",
            Kind::Anonymous => "anonymous",
            Kind::Stack => "[stack]",
            Kind::File => "file",
            Kind::Kernel => "kernel",
        };
        write!(
            f,
            "{:x}-{:x} {perms} {} {kind}",
            self.start,
            self.end,
            Bytes(self.len() as u64)
        )
    }
}

/// All the mappings of the process at one moment, in address order.
#[derive(Clone)]
pub struct Maps {
    list: [Mapping; MAX_MAPPINGS],
    len: usize,
    /// The text or the mapping count outgrew the fixed room, so some mappings are missing.
    pub truncated: bool,
}

impl Maps {
    pub fn parse(text: &[u8]) -> Maps {
        let mut maps = Maps {
            list: [Mapping::EMPTY; MAX_MAPPINGS],
            len: 0,
            truncated: false,
        };
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Some(m) = Mapping::parse(line) else {
                continue;
            };
            if maps.len == MAX_MAPPINGS {
                maps.truncated = true;
                break;
            }
            maps.list[maps.len] = m;
            maps.len += 1;
        }
        maps
    }

    /// Reads /proc/self/maps with open(2) and read(2) into a buffer on the stack.
    pub fn of_self() -> Maps {
        let mut text = [0u8; MAX_TEXT];
        let mut len = 0;
        // SAFETY: a NUL-terminated path; the descriptor is closed below.
        let fd = unsafe {
            libc::open(
                c"/proc/self/maps".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd >= 0 {
            while len < text.len() {
                // SAFETY: reading into the unused tail of `text`, no more than its length.
                let n =
                    unsafe { libc::read(fd, text[len..].as_mut_ptr().cast(), text.len() - len) };
                if n <= 0 {
                    break;
                }
                len += n as usize;
            }
            // SAFETY: `fd` was opened above and is closed once.
            unsafe { libc::close(fd) };
        }
        let mut maps = Maps::parse(&text[..len]);
        maps.truncated |= len == text.len();
        maps
    }

    pub fn iter(&self) -> impl Iterator<Item = &Mapping> {
        self.list[..self.len].iter()
    }

    pub fn containing(&self, addr: usize) -> Option<&Mapping> {
        self.iter().find(|m| m.contains(addr))
    }

    pub fn heap(&self) -> Option<&Mapping> {
        self.iter().find(|m| m.kind == Kind::Heap)
    }

    pub fn has(&self, m: &Mapping) -> bool {
        self.iter().any(|x| x == m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"\
55d0c3a4b000-55d0c3a4d000 r--p 00000000 fe:00 247030    /usr/bin/tidemalloc
55d0c3a6c000-55d0c3a8d000 rw-p 00000000 00:00 0          [heap]
7f3a1c5fe000-7f3a1c631000 rw-p 00000000 00:00 0 
7f3a1c800000-7f3a1c828000 r--p 00000000 fe:00 1234       /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd5e2f0000-7ffd5e311000 rw-p 00000000 00:00 0          [stack]
7ffd5e3c4000-7ffd5e3c8000 r--p 00000000 00:00 0          [vvar]
";

    #[test]
    fn parses_every_kind_of_line() {
        let maps = Maps::parse(TEXT);
        let kinds: Vec<Kind> = maps.iter().map(|m| m.kind).collect();
        use Kind::*;
        assert_eq!(kinds, [File, Heap, Anonymous, File, Stack, Kernel]);
        let heap = maps.heap().unwrap();
        assert_eq!((heap.start, heap.end), (0x55d0c3a6c000, 0x55d0c3a8d000));
        assert_eq!(&heap.perms, b"rw-p");
        assert!(!maps.truncated);
    }

    #[test]
    fn finds_the_mapping_of_an_address() {
        let maps = Maps::parse(TEXT);
        let m = maps.containing(0x7f3a1c5fe010).unwrap();
        assert_eq!((m.kind, m.len()), (Kind::Anonymous, 204 * 1024));
        assert!(maps.containing(0x7f3a1c631000).is_none());
        assert_eq!(
            m.to_string(),
            "7f3a1c5fe000-7f3a1c631000 rw-p 204 KiB anonymous"
        );
    }

    #[test]
    fn skips_lines_that_are_no_mappings() {
        let maps = Maps::parse(b"garbage\n\n10-20 rw-p 0 0:0 0\nxyz-20 rw-p 0 0:0 0\n");
        assert_eq!(maps.iter().count(), 1);
    }

    #[test]
    fn reads_its_own_maps() {
        let maps = Maps::of_self();
        let here = maps.iter().filter(|m| m.kind == Kind::Stack).count();
        assert_eq!(here, 1);
        let local = 0u8;
        let addr = &local as *const u8 as usize;
        assert!(maps.containing(addr).is_some(), "the stack holds {addr:x}");
    }
}
