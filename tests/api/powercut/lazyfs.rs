//! A disk that forgets, at a power cut, whatever was not made durable: a FUSE
//! file system in the spirit of Jepsen's LazyFS, for the power-cut tests.
//!
//! The backing directory is the disk. `mount` reads it into memory; from then
//! on writes, truncates, creates, renames and unlinks change only memory (the
//! page cache, as it were), and beside it the file system keeps what POSIX
//! promises is durable:
//!
//! - `fsync`/`fdatasync` of a file makes its contents and size durable;
//! - `fsync` of a directory makes its entries durable: the names created,
//!   renamed into, renamed out of or removed from it since its last fsync,
//!   each naming its file's durable contents.
//!
//! Nothing else does: not closing a file, not `sync_file_range` (it never
//! reaches a FUSE file system), and not a file's own fsync for the name it was
//! created or renamed under. `cut` unmounts and writes the durable state, and
//! only it, back to the backing directory, as a disk holds it after a power
//! loss; it returns what was dropped. Modes, owners and times are not
//! modelled (nothing the store does depends on them); hard and symbolic links
//! are refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    BackgroundSession, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// The unit in which unsynced data is tracked, as a page cache does.
const PAGE: u64 = 4096;
/// How long the kernel may cache attributes and names: every change passes
/// through this file system, so the kernel's copies stay right.
const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = 1;

/// What `fsync` and `fdatasync` of a file do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Both make the file's contents durable.
    Kept,
    /// `fdatasync` answers success and makes nothing durable (`fsync` still
    /// does): a disk that lies about the barrier the store relies on.
    FdatasyncIgnored,
}

struct File {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Pages that may differ between `data` and `durable`, including every page
    /// between the two lengths.
    dirty: BTreeSet<u64>,
}

struct Dir {
    entries: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

enum Node {
    File(File),
    Dir(Dir),
}

/// Every node ever reachable since the mount, by inode number. Nodes are never
/// freed before the cut: a durable entry may still name an unlinked file.
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    sync: Sync,
}

fn pages(from: u64, to: u64) -> std::ops::Range<u64> {
    if to <= from {
        0..0
    } else {
        from / PAGE..(to - 1) / PAGE + 1
    }
}

impl File {
    fn write(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset + bytes.len() as u64;
        if end > self.data.len() as u64 {
            self.resize(end);
        }
        self.data[offset as usize..end as usize].copy_from_slice(bytes);
        self.dirty.extend(pages(offset, end));
    }

    fn resize(&mut self, len: u64) {
        let old = self.data.len() as u64;
        self.dirty.extend(pages(old.min(len), old.max(len)));
        self.data.resize(len as usize, 0);
    }

    fn sync(&mut self) {
        let len = self.data.len();
        self.durable.resize(len, 0);
        for page in std::mem::take(&mut self.dirty) {
            let (from, to) = ((page * PAGE) as usize, (((page + 1) * PAGE) as usize).min(len));
            if from < to {
                self.durable[from..to].copy_from_slice(&self.data[from..to]);
            }
        }
    }
}

impl State {
    fn load(backing: &Path, sync: Sync) -> std::io::Result<State> {
        let mut state = State {
            nodes: HashMap::new(),
            next_ino: ROOT,
            sync,
        };
        state.load_dir(backing)?;
        Ok(state)
    }

    fn load_dir(&mut self, path: &Path) -> std::io::Result<u64> {
        let ino = self.allocate();
        let mut entries = BTreeMap::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let child = if entry.file_type()?.is_dir() {
                self.load_dir(&entry.path())?
            } else {
                let data = std::fs::read(entry.path())?;
                self.insert(Node::File(File {
                    durable: data.clone(),
                    data,
                    dirty: BTreeSet::new(),
                }))
            };
            entries.insert(entry.file_name(), child);
        }
        self.nodes.insert(
            ino,
            Node::Dir(Dir {
                durable: entries.clone(),
                entries,
            }),
        );
        Ok(ino)
    }

    fn allocate(&mut self) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn insert(&mut self, node: Node) -> u64 {
        let ino = self.allocate();
        self.nodes.insert(ino, node);
        ino
    }

    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let (kind, size, perm, nlink) = match self.nodes.get(&ino).ok_or(Errno::ENOENT)? {
            Node::File(f) => (FileType::RegularFile, f.data.len() as u64, 0o644, 1),
            Node::Dir(_) => (FileType::Directory, 0, 0o755, 2),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn file(&mut self, ino: u64) -> Result<&mut File, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn dir(&mut self, ino: u64) -> Result<&mut Dir, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn child(&mut self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?.entries.get(name).copied().ok_or(Errno::ENOENT)
    }

    fn is_dir(&self, ino: u64) -> bool {
        matches!(self.nodes.get(&ino), Some(Node::Dir(_)))
    }

    /// A new node named `name` in `parent` (in memory only, until `parent` is synced).
    fn create(&mut self, parent: u64, name: &OsStr, node: Node) -> Result<FileAttr, Errno> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.insert(node);
        self.dir(parent)?.entries.insert(name.to_owned(), ino);
        self.attr(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        match self.nodes.get(&ino) {
            Some(Node::Dir(d)) if want_dir && !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            Some(Node::Dir(_)) if !want_dir => return Err(Errno::EISDIR),
            Some(Node::File(_)) if want_dir => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.dir(parent)?.entries.remove(name);
        Ok(())
    }

    fn rename(&mut self, from: (u64, &OsStr), to: (u64, &OsStr), flags: RenameFlags) -> Result<(), Errno> {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return Err(Errno::EINVAL);
        }
        let ino = self.child(from.0, from.1)?;
        if let Ok(target) = self.child(to.0, to.1) {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            match (self.is_dir(ino), self.nodes.get(&target)) {
                (true, Some(Node::Dir(d))) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
                (true, Some(Node::File(_))) => return Err(Errno::ENOTDIR),
                (false, Some(Node::Dir(_))) => return Err(Errno::EISDIR),
                _ => {}
            }
        }
        self.dir(from.0)?.entries.remove(from.1);
        self.dir(to.0)?.entries.insert(to.1.to_owned(), ino);
        Ok(())
    }

    fn fsync(&mut self, ino: u64, datasync: bool) -> Result<(), Errno> {
        if datasync && self.sync == Sync::FdatasyncIgnored {
            return Ok(());
        }
        self.file(ino)?.sync();
        Ok(())
    }

    fn fsyncdir(&mut self, ino: u64) -> Result<(), Errno> {
        let dir = self.dir(ino)?;
        dir.durable = dir.entries.clone();
        Ok(())
    }

    /// What a cut drops: each name whose creation, rename or removal was not
    /// synced, and each file with unsynced pages, as paths from the root.
    fn unsynced(&self) -> Vec<String> {
        let mut lost = Vec::new();
        let mut todo = vec![(ROOT, PathBuf::from("/"))];
        while let Some((ino, path)) = todo.pop() {
            match &self.nodes[&ino] {
                Node::File(f) if !f.dirty.is_empty() => lost.push(format!(
                    "{}: {} unsynced pages (size {}, durable size {})",
                    path.display(),
                    f.dirty.len(),
                    f.data.len(),
                    f.durable.len()
                )),
                Node::File(_) => {}
                Node::Dir(d) => {
                    for (name, child) in &d.entries {
                        match d.durable.get(name) {
                            None => lost.push(format!("{}: new name, not synced", path.join(name).display())),
                            Some(c) if c != child => {
                                lost.push(format!("{}: replaced, not synced", path.join(name).display()))
                            }
                            Some(_) => {}
                        }
                        todo.push((*child, path.join(name)));
                    }
                    for name in d.durable.keys().filter(|n| !d.entries.contains_key(*n)) {
                        lost.push(format!("{}: removed, not synced", path.join(name).display()));
                    }
                }
            }
        }
        lost.sort();
        lost
    }

    /// Write the durable tree under `dir` into `path`.
    fn write_durable(&self, dir: u64, path: &Path) -> std::io::Result<()> {
        let Node::Dir(d) = &self.nodes[&dir] else {
            unreachable!("a directory's inode")
        };
        for (name, ino) in &d.durable {
            match &self.nodes[ino] {
                Node::File(f) => std::fs::write(path.join(name), &f.durable)?,
                Node::Dir(_) => {
                    std::fs::create_dir(path.join(name))?;
                    self.write_durable(*ino, &path.join(name))?;
                }
            }
        }
        Ok(())
    }
}

/// The FUSE face of `State`.
struct LazyFs(Arc<Mutex<State>>);

impl LazyFs {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("the file system's lock")
    }
}

fn answer_entry(reply: ReplyEntry, attr: Result<FileAttr, Errno>) {
    match attr {
        Ok(a) => reply.entry(&TTL, &a, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn answer(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut s = self.state();
        let attr = s.child(parent.0, name).and_then(|ino| s.attr(ino));
        answer_entry(reply, attr);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().attr(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut s = self.state();
        let resized = match size {
            Some(len) => s.file(ino.0).map(|f| f.resize(len)),
            None => Ok(()),
        };
        match resized.and_then(|()| s.attr(ino.0)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        let dir = Node::Dir(Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
        });
        answer_entry(reply, self.state().create(parent.0, name, dir));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let file = Node::File(File {
            data: Vec::new(),
            durable: Vec::new(),
            dirty: BTreeSet::new(),
        });
        match self.state().create(parent.0, name, file) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        answer(reply, self.state().remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        answer(reply, self.state().remove(parent.0, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        answer(
            reply,
            self.state().rename((parent.0, name), (newparent.0, newname), flags),
        );
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut s = self.state();
        match s.file(ino.0) {
            Ok(f) => {
                let from = (offset as usize).min(f.data.len());
                let to = (from + size as usize).min(f.data.len());
                reply.data(&f.data[from..to]);
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.state().file(ino.0) {
            Ok(f) => {
                f.write(offset, data);
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // Closing a file makes nothing durable.
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        answer(reply, self.state().fsync(ino.0, datasync));
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let mut s = self.state();
        let entries: Vec<(u64, FileType, OsString)> = match s.dir(ino.0) {
            Ok(d) => {
                let dots = [
                    (ino.0, FileType::Directory, ".".into()),
                    (ROOT, FileType::Directory, "..".into()),
                ];
                let named: Vec<(u64, OsString)> = d.entries.iter().map(|(n, i)| (*i, n.clone())).collect();
                dots.into_iter()
                    .chain(named.into_iter().map(|(i, n)| {
                        let kind = if s.is_dir(i) {
                            FileType::Directory
                        } else {
                            FileType::RegularFile
                        };
                        (i, kind, n)
                    }))
                    .collect()
            }
            Err(e) => return reply.error(e),
        };
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        answer(reply, self.state().fsyncdir(ino.0));
    }
}

/// A mounted `LazyFs` over a backing directory.
pub struct Disk {
    backing: PathBuf,
    mountpoint: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
}

impl Disk {
    /// Mount the disk held in `backing` (a directory) at `mountpoint`.
    pub fn mount(backing: &Path, mountpoint: &Path, sync: Sync) -> std::io::Result<Disk> {
        let state = Arc::new(Mutex::new(State::load(backing, sync)?));
        let mut config = fuser::Config::default();
        config.mount_options = vec![MountOption::FSName("lazyfs".into())];
        let session = fuser::spawn_mount(LazyFs(state.clone()), mountpoint, &config)?;
        Ok(Disk {
            backing: backing.to_owned(),
            mountpoint: mountpoint.to_owned(),
            state,
            session: Some(session),
        })
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Cut the power: unmount (every process using the disk must be gone) and
    /// leave in the backing directory only what was durable. Returns what was
    /// dropped.
    pub fn cut(mut self) -> Vec<String> {
        self.unmount();
        let state = self.state.lock().expect("the file system's lock");
        let dropped = state.unsynced();
        std::fs::remove_dir_all(&self.backing).expect("the backing directory is cleared");
        std::fs::create_dir(&self.backing).expect("the backing directory is made again");
        state
            .write_durable(ROOT, &self.backing)
            .expect("the durable image is written");
        dropped
    }

    fn unmount(&mut self) {
        if let Some(session) = self.session.take() {
            if let Err(e) = session.umount_and_join() {
                // Still busy: detach it now, so no mount outlives the test.
                let detached = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(detached, "{} could not be unmounted: {e}", self.mountpoint.display());
            }
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.unmount();
        } else if let Some(session) = self.session.take() {
            if session.umount_and_join().is_err() {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .status();
            }
        }
    }
}
