//! The sled store's write-ahead file: what makes an append durable in one
//! device round trip.
//!
//! sled 0.34's `flush` writes its log buffer and waits for that write
//! (`sync_file_range`), and the `fdatasync` that must follow it (the write
//! carries no cache flush) also writes the file's inode, because sled's file
//! grows: two round trips in series, three device requests, for every lone
//! append. The store instead writes each group's keys and values to this
//! file, made once at its full size of zeros and synced, so that an `fdatasync` after a write into it
//! carries the data and the cache flush alone, as a database's WAL segment
//! does. sled gets the same keys without a flush; when the file is full, sled
//! is flushed and synced (a checkpoint) and the file starts over under a new
//! epoch. Opening the store applies the records of the current epoch to sled
//! again before anything else reads it.
//!
//! Layout: a header block (`MAGIC`, the epoch, a CRC-32 of both), then
//! records, each `len` (u32 LE, of the body) + CRC-32 (of epoch + body) +
//! epoch (u64 LE) + body; a body is its writes, each key length (u16 LE), key,
//! value length (u32 LE), value. A record is valid only whole, with the
//! header's epoch: the first one that is not (zeros, a torn write, a record
//! of an earlier epoch) ends the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The file's name in the store's directory.
pub const WAL_FILE: &str = "wal";
/// The file's size: the writes between two checkpoints.
const WAL_BYTES: u64 = 8 << 20;
/// The header block; records start after it.
const HEADER_BYTES: u64 = 4096;
const MAGIC: &[u8; 8] = b"sitrwal1";
/// `len`, CRC and epoch before a record's body.
const RECORD_HEAD: usize = 16;

/// One write of a group: a key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

pub struct Wal {
    file: File,
    epoch: u64,
    /// Where the next record goes.
    at: u64,
}

impl Wal {
    /// Open the file in `dir`, or make it (zeros, synced, and its name synced
    /// in `dir`). Returns it and the records of its current epoch, in order,
    /// each a group's writes. The caller applies them, makes them durable in
    /// sled, and then must call [`Wal::restart`] before appending: records of
    /// this epoch after the last valid one could otherwise count again.
    pub fn open(dir: &Path) -> io::Result<(Wal, Vec<Vec<Entry>>)> {
        let path = dir.join(WAL_FILE);
        let found = match File::open(&path) {
            Ok(f) => Some((f.metadata()?.len(), f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let header = match &found {
            Some((len, f)) if *len == WAL_BYTES => read_header(f)?,
            _ => None,
        };
        let (file, epoch, records) = match (found, header) {
            (Some((len, f)), Some(epoch)) => {
                let records = read_records(&f, len, epoch)?;
                (OpenOptions::new().read(true).write(true).open(&path)?, epoch, records)
            }
            // Missing, or not made whole (it is renamed into place only once
            // synced at its full size): no record was ever written to it. Or
            // its header was torn while it started over, when everything in
            // it was durable in sled: made again, so that no record of an
            // earlier epoch can match the next one's.
            (found, _) => {
                if let Some((len, _)) = found {
                    tracing::warn!(
                        bytes = len,
                        "the write-ahead file is not whole or its header is torn; it is made again"
                    );
                }
                (make(dir, &path)?, 0, Vec::new())
            }
        };
        Ok((
            Wal {
                file,
                epoch,
                at: HEADER_BYTES,
            },
            records,
        ))
    }

    /// Append one group's writes and `fdatasync` them. `Ok(false)` when they
    /// do not fit in what is left of the file: nothing was written, and the
    /// caller must make the group durable in sled and then [`Wal::restart`].
    pub fn append(&mut self, writes: &[Entry]) -> io::Result<bool> {
        let body_len: usize = writes.iter().map(|(k, v)| 2 + k.len() + 4 + v.len()).sum();
        let total = (RECORD_HEAD + body_len) as u64;
        if self.at + total > WAL_BYTES {
            return Ok(false);
        }
        let mut rec = Vec::with_capacity(RECORD_HEAD + body_len);
        rec.extend_from_slice(&(body_len as u32).to_le_bytes());
        rec.extend_from_slice(&[0; 4]);
        rec.extend_from_slice(&self.epoch.to_le_bytes());
        for (k, v) in writes {
            rec.extend_from_slice(&(k.len() as u16).to_le_bytes());
            rec.extend_from_slice(k);
            rec.extend_from_slice(&(v.len() as u32).to_le_bytes());
            rec.extend_from_slice(v);
        }
        let crc = crc32fast::hash(&rec[8..]);
        rec[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&rec, self.at)?;
        self.file.sync_data()?;
        self.at += total;
        Ok(true)
    }

    /// More than half of the file is taken.
    pub fn is_half_full(&self) -> bool {
        self.at > WAL_BYTES / 2
    }

    /// Start the file over under the next epoch, once everything in it is
    /// durable in sled: its records then no longer count.
    pub fn restart(&mut self) -> io::Result<()> {
        let epoch = self.epoch + 1;
        self.file.write_all_at(&header(epoch), 0)?;
        self.file.sync_data()?;
        self.epoch = epoch;
        self.at = HEADER_BYTES;
        Ok(())
    }
}

fn header(epoch: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&epoch.to_le_bytes());
    let crc = crc32fast::hash(&h[..16]);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The header's epoch, or `None` if it is not whole.
fn read_header(f: &File) -> io::Result<Option<u64>> {
    let mut h = [0u8; 20];
    match f.read_exact_at(&mut h, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let epoch = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    Ok((h == header(epoch)).then_some(epoch))
}

/// The records of `epoch`, up to the first that is not whole.
fn read_records(f: &File, len: u64, epoch: u64) -> io::Result<Vec<Vec<Entry>>> {
    let mut records = Vec::new();
    let mut at = HEADER_BYTES;
    let mut head = [0u8; RECORD_HEAD];
    while at + RECORD_HEAD as u64 <= len {
        f.read_exact_at(&mut head, at)?;
        let body_len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as u64;
        let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
        if body_len == 0 || head[8..] != epoch.to_le_bytes() || at + RECORD_HEAD as u64 + body_len > len {
            break;
        }
        let mut body = vec![0u8; body_len as usize];
        f.read_exact_at(&mut body, at + RECORD_HEAD as u64)?;
        let mut h = crc32fast::Hasher::new();
        h.update(&head[8..]);
        h.update(&body);
        if h.finalize() != crc {
            break;
        }
        match parse(&body) {
            Some(writes) => records.push(writes),
            None => break,
        }
        at += RECORD_HEAD as u64 + body_len;
    }
    Ok(records)
}

fn parse(mut body: &[u8]) -> Option<Vec<Entry>> {
    let mut writes = Vec::new();
    while !body.is_empty() {
        let klen = u16::from_le_bytes(body.get(..2)?.try_into().ok()?) as usize;
        let key = body.get(2..2 + klen)?.to_vec();
        body = &body[2 + klen..];
        let vlen = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
        let value = body.get(4..4usize.checked_add(vlen)?)?.to_vec();
        body = &body[4 + vlen..];
        writes.push((key, value));
    }
    Some(writes)
}

/// Make the file: zeros at its full size (written, not `set_len`: a hole's
/// first write would allocate it, metadata the record's sync must carry),
/// under a temporary name, synced, then renamed into place and the name
/// synced in `dir`.
fn make(dir: &Path, path: &Path) -> io::Result<File> {
    let tmp = dir.join(format!("{WAL_FILE}.new"));
    {
        let mut f = File::create(&tmp)?;
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..WAL_BYTES / zeros.len() as u64 {
            f.write_all(&zeros)?;
        }
        f.write_all_at(&header(0), 0)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    OpenOptions::new().read(true).write(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(writes: &[(&[u8], &[u8])]) -> Vec<Entry> {
        writes.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn records_of_the_current_epoch_come_back_in_order_and_a_torn_one_ends_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, found) = Wal::open(dir.path()).unwrap();
        assert!(found.is_empty());
        assert!(wal.append(&group(&[(b"e1", b"one"), (b"h", b"head")])).unwrap());
        assert!(wal.append(&group(&[(b"e2", b"two")])).unwrap());
        let third = wal.at;
        assert!(wal.append(&group(&[(b"e3", b"three")])).unwrap());
        drop(wal);
        let (_, found) = Wal::open(dir.path()).unwrap();
        let keys: Vec<Vec<&[u8]>> = found
            .iter()
            .map(|r| r.iter().map(|(k, _)| k.as_slice()).collect())
            .collect();
        assert_eq!(keys, vec![vec![&b"e1"[..], b"h"], vec![b"e2"], vec![b"e3"]]);
        assert_eq!(found[0][0].1, b"one");
        // Tear the third record's last byte: the first two remain.
        let f = OpenOptions::new().write(true).open(dir.path().join(WAL_FILE)).unwrap();
        f.write_all_at(&[0xff], third + RECORD_HEAD as u64 + 2 + 2 + 4 + 4)
            .unwrap();
        let (mut wal, found) = Wal::open(dir.path()).unwrap();
        assert_eq!(found.len(), 2);
        // After a restart the old records no longer count, even where the new
        // epoch has not written over them.
        wal.restart().unwrap();
        assert!(wal.append(&group(&[(b"e4", b"four")])).unwrap());
        drop(wal);
        let (_, found) = Wal::open(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0][0], (b"e4".to_vec(), b"four".to_vec()));
    }

    #[test]
    fn a_group_larger_than_the_file_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        let big = vec![b'x'; WAL_BYTES as usize];
        assert!(!wal.append(&group(&[(b"e1", &big)])).unwrap());
        drop(wal);
        assert!(Wal::open(dir.path()).unwrap().1.is_empty());
    }
}
