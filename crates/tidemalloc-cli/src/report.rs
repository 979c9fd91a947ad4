//! The line libtidemalloc.so writes at exit to `$TIDEMALLOC_REPORT_FD`:
//! `tidemalloc system_bytes=N in_use_bytes=N mmapped_bytes=N mmapped_chunks=N
//! max_arena_bytes=N max_mmapped_bytes=N arenas=N pid=N`.

/// The allocator's totals at the exit of one process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllocatorReport {
    pub system_bytes: u64,
    pub in_use_bytes: u64,
    pub mmapped_bytes: u64,
    pub mmapped_chunks: u64,
    pub max_arena_bytes: u64,
    pub max_mmapped_bytes: u64,
    /// The reporting process, where the library says (it may not).
    pub pid: Option<u32>,
}

impl AllocatorReport {
    /// Parses one report line; keys this command does not know are skipped, so a library
    /// that reports more still works.
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.split_whitespace();
        if words.next() != Some("tidemalloc") {
            return Err(format!("not a tidemalloc report: {line:?}"));
        }
        let mut report = AllocatorReport::default();
        let mut seen = 0u8;
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("{word:?} is not key=value"))?;
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("{key}={v}: not a number"))
            };
            let (field, bit) = match key {
                "system_bytes" => (&mut report.system_bytes, 1),
                "in_use_bytes" => (&mut report.in_use_bytes, 2),
                "mmapped_bytes" => (&mut report.mmapped_bytes, 4),
                "mmapped_chunks" => (&mut report.mmapped_chunks, 8),
                "max_arena_bytes" => (&mut report.max_arena_bytes, 16),
                "max_mmapped_bytes" => (&mut report.max_mmapped_bytes, 32),
                "pid" => {
                    report.pid = Some(value.parse().map_err(|_| format!("pid={value}"))?);
                    continue;
                }
                _ => continue,
            };
            *field = number(value)?;
            seen |= bit;
        }
        if seen == 0b11_1111 {
            Ok(report)
        } else {
            Err(format!("incomplete tidemalloc report: {line:?}"))
        }
    }
}

/// Every report that arrived on the pipe, and which one belongs to the program itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reports {
    /// The program's own report, if one arrived.
    pub program: Option<AllocatorReport>,
    /// How many processes reported: the program's children inherit the preload and the
    /// descriptor, so each of them writes a line too.
    pub count: usize,
    /// Lines that were not reports (a process that wrote to the descriptor for its own ends).
    pub unreadable: usize,
}

impl Reports {
    /// Sorts out what arrived. The program's report is the one carrying its pid; where the
    /// library writes no pid, the last one, as the program normally outlives its children.
    pub fn collect(text: &str, program_pid: u32) -> Self {
        let mut parsed = Vec::new();
        let mut unreadable = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match AllocatorReport::parse(line) {
                Ok(r) => parsed.push(r),
                Err(_) => unreadable += 1,
            }
        }
        let count = parsed.len();
        let program = match parsed.iter().position(|r| r.pid == Some(program_pid)) {
            Some(i) => Some(parsed.swap_remove(i)),
            None if parsed.iter().all(|r| r.pid.is_none()) => parsed.pop(),
            None => None,
        };
        Reports {
            program,
            count,
            unreadable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "tidemalloc system_bytes=135168 in_use_bytes=1024 mmapped_bytes=208896 \
                        mmapped_chunks=1 max_arena_bytes=344064 max_mmapped_bytes=417792\n";

    #[test]
    fn parses_the_contract_line() {
        let r = AllocatorReport::parse(LINE).unwrap();
        assert_eq!(r.system_bytes, 135168);
        assert_eq!(r.in_use_bytes, 1024);
        assert_eq!(r.mmapped_bytes, 208896);
        assert_eq!(r.mmapped_chunks, 1);
        assert_eq!(r.max_arena_bytes, 344064);
        assert_eq!(r.max_mmapped_bytes, 417792);
        assert_eq!(r.pid, None);
    }

    #[test]
    fn skips_unknown_keys_and_reads_a_pid() {
        let line = LINE.trim_end().to_string() + " pid=42 arenas=3";
        let r = AllocatorReport::parse(&line).unwrap();
        assert_eq!(r.pid, Some(42));
        assert_eq!(r.system_bytes, 135168);
    }

    #[test]
    fn rejects_foreign_incomplete_and_malformed_lines() {
        assert!(AllocatorReport::parse("hello world").is_err());
        assert!(AllocatorReport::parse("tidemalloc system_bytes=1").is_err());
        assert!(AllocatorReport::parse(&LINE.replace("=1024", "=x")).is_err());
    }

    #[test]
    fn without_pids_the_last_report_is_the_programs() {
        let child = LINE.replace("in_use_bytes=1024", "in_use_bytes=7");
        let text = format!("{child}garbage\n{LINE}");
        let reports = Reports::collect(&text, 100);
        assert_eq!(reports.count, 2);
        assert_eq!(reports.unreadable, 1);
        assert_eq!(reports.program.unwrap().in_use_bytes, 1024);
    }

    #[test]
    fn with_pids_the_programs_own_report_is_chosen() {
        let mine = format!("{} pid=100\n", LINE.trim_end());
        let childs = format!("{} pid=101\n", LINE.trim_end().replace("=1024", "=7"));
        let reports = Reports::collect(&(mine + &childs), 100);
        assert_eq!(reports.program.unwrap().in_use_bytes, 1024);
        let reports = Reports::collect(&childs, 100);
        assert_eq!(reports.count, 1);
        assert_eq!(reports.program, None);
    }
}
