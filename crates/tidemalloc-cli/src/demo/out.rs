//! Standard output for the demonstration, gathered on the stack and written with write(2):
//! `println!` would put stdout's buffer on the very heap the demonstration shows.

use core::fmt;

/// Text waiting to be written; it never allocates.
pub struct Out {
    buf: [u8; 16 * 1024],
    len: usize,
}

impl Out {
    pub const fn new() -> Self {
        Out {
            buf: [0; 16 * 1024],
            len: 0,
        }
    }

    /// Writes out what has gathered.
    pub fn flush(&mut self) {
        write_all(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > self.buf.len() {
            self.flush();
        }
        if s.len() > self.buf.len() {
            write_all(s.as_bytes());
        } else {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        }
        Ok(())
    }
}

fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing from a live slice, no more than its length.
        let n = unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            // Output is gone (a closed pipe): nothing more to say.
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
