//! A writer for the "newc" cpio format, the one the kernel unpacks as an initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst): per entry a 110-byte ASCII
//! header of `070701` and thirteen 8-digit hex fields, the NUL-terminated name, padding to 4
//! bytes, the data, padding to 4 bytes; a `TRAILER!!!` entry ends the archive. Uncompressed,
//! which every kernel with an initramfs accepts.

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFCHR: u32 = 0o020000;

/// An archive being built in memory.
#[derive(Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    next_ino: u32,
}

fn pad4(bytes: &mut Vec<u8>) {
    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
}

impl Cpio {
    pub fn new() -> Cpio {
        Cpio {
            bytes: Vec::new(),
            next_ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0, // uid: root
            0, // gid: root
            nlink,
            0, // mtime: fixed, so the same inputs make the same archive
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check: unused in newc
        ];
        self.bytes.extend_from_slice(MAGIC.as_bytes());
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        pad4(&mut self.bytes);
        self.bytes.extend_from_slice(data);
        pad4(&mut self.bytes);
    }

    /// A directory (parents first: the kernel does not create them).
    pub fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[]);
    }

    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | (perm & 0o7777), (0, 0), data);
    }

    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | (perm & 0o7777), (major, minor), &[]);
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(TRAILER, 0, (0, 0), &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name, mode, (rdev major, minor), data.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// A reader just for the tests.
    fn read(mut bytes: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            assert_eq!(&bytes[..6], MAGIC.as_bytes(), "magic at offset {offset}");
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap(),
                    16,
                )
                .unwrap()
            };
            let (mode, size, rdev, namesize) = (
                field(1),
                field(6) as usize,
                (field(9), field(10)),
                field(11) as usize,
            );
            let name = std::str::from_utf8(&bytes[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(bytes[110 + namesize - 1], 0, "name is NUL-terminated");
            let data_at = (110 + namesize).div_ceil(4) * 4;
            let data = bytes[data_at..data_at + size].to_vec();
            let next = (data_at + size).div_ceil(4) * 4;
            offset += next;
            bytes = &bytes[next..];
            if name == TRAILER {
                assert!(bytes.is_empty(), "nothing after the trailer");
                return out;
            }
            out.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn header_is_byte_exact() {
        let mut c = Cpio::new();
        c.file("init", 0o755, b"hello");
        let bytes = c.finish();
        let header = std::str::from_utf8(&bytes[..110]).unwrap();
        assert_eq!(
            header,
            "070701\
             00000001\
             000081ED\
             00000000\
             00000000\
             00000001\
             00000000\
             00000005\
             00000000\
             00000000\
             00000000\
             00000000\
             00000005\
             00000000"
        );
        // name "init\0" ends at 115, padded to 116; data "hello" padded to 124.
        assert_eq!(&bytes[110..116], b"init\0\0");
        assert_eq!(&bytes[116..124], b"hello\0\0\0");
        assert_eq!(&bytes[124..130], MAGIC.as_bytes());
        assert!(bytes.len().is_multiple_of(4));
    }

    #[test]
    fn entries_round_trip() {
        let mut c = Cpio::new();
        c.dir("dev");
        c.char_device("dev/console", 0o600, 5, 1);
        c.file("cases/wp/a.yaml", 0o644, b"name: a\n");
        c.file("empty", 0o644, b"");
        let entries = read(&c.finish());
        assert_eq!(
            entries,
            vec![
                ("dev".into(), S_IFDIR | 0o755, (0, 0), vec![]),
                ("dev/console".into(), S_IFCHR | 0o600, (5, 1), vec![]),
                (
                    "cases/wp/a.yaml".into(),
                    S_IFREG | 0o644,
                    (0, 0),
                    b"name: a\n".to_vec()
                ),
                ("empty".into(), S_IFREG | 0o644, (0, 0), vec![]),
            ]
        );
    }
}
