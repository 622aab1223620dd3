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
//! created or renamed under. `cut` unmounts and writes the durable state back
//! to the backing directory, as a disk holds it after a power loss (with
//! `Loss::TornPages`, plus a random share of the unsynced pages); it returns
//! what was dropped. The power can also go out at a chosen
//! operation (see `Disk::mount`). Modes, owners and times are not
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

/// What `fdatasync` of a file does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fdatasync {
    /// It makes the file's contents durable, as `fsync` does.
    Honoured,
    /// It answers success and makes nothing durable (`fsync` still does): a
    /// disk that lies about the barrier the store relies on.
    Ignored,
}

/// What reaches the disk, at a cut, of what was not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Nothing: the disk holds exactly what was synced.
    All,
    /// Each unsynced page of a file reaches it or not, at random, as sectors
    /// do when the power fails while the cache is written back (a page past
    /// the synced size makes the file that long). Names are still only what
    /// their directory's fsync made durable.
    TornPages,
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
    fdatasync: Fdatasync,
    /// Changing operations (writes, truncates, names, syncs) since the mount.
    ops: u64,
    /// The power goes out at this changing operation (see `Disk::mount`).
    cut_at: Option<u64>,
    out: bool,
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

    /// What the disk holds of the file after a cut, and how many of its
    /// unsynced pages that includes.
    fn image(&self, loss: Loss) -> (Vec<u8>, usize) {
        let mut image = self.durable.clone();
        let mut kept = 0;
        if loss == Loss::TornPages {
            for page in self.dirty.iter().filter(|_| rand::random::<bool>()) {
                let (from, to) = self.page_bytes(*page);
                if from < to {
                    if image.len() < to {
                        image.resize(to, 0);
                    }
                    image[from..to].copy_from_slice(&self.data[from..to]);
                    kept += 1;
                }
            }
        }
        (image, kept)
    }

    /// The bytes of `page` the file holds (none past its end).
    fn page_bytes(&self, page: u64) -> (usize, usize) {
        let len = self.data.len() as u64;
        ((page * PAGE).min(len) as usize, ((page + 1) * PAGE).min(len) as usize)
    }

    fn sync(&mut self) {
        let len = self.data.len();
        self.durable.resize(len, 0);
        for page in std::mem::take(&mut self.dirty) {
            let (from, to) = self.page_bytes(page);
            self.durable[from..to].copy_from_slice(&self.data[from..to]);
        }
    }
}

impl State {
    fn load(backing: &Path, fdatasync: Fdatasync, cut_at: Option<u64>) -> std::io::Result<State> {
        let mut state = State {
            nodes: HashMap::new(),
            next_ino: ROOT,
            fdatasync,
            ops: 0,
            cut_at,
            out: false,
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

    /// Count a changing operation by process `pid`; once the power is out it
    /// fails and changes nothing. The operation the power goes out at kills
    /// its caller first, so no answer reaches it.
    fn step(&mut self, pid: u32) -> Result<(), Errno> {
        self.ops += 1;
        if self.cut_at == Some(self.ops) {
            self.out = true;
            let killed = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(killed, "the process at the power cut ({pid}) is killed");
        }
        if self.out {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
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
        if datasync && self.fdatasync == Fdatasync::Ignored {
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

    /// Write what the disk holds of the tree under `dir` into `path`; the
    /// unsynced pages that reached it.
    fn write_disk(&self, dir: u64, path: &Path, loss: Loss) -> std::io::Result<usize> {
        let Node::Dir(d) = &self.nodes[&dir] else {
            unreachable!("a directory's inode")
        };
        let mut kept = 0;
        for (name, ino) in &d.durable {
            match &self.nodes[ino] {
                Node::File(f) => {
                    let (image, pages) = f.image(loss);
                    std::fs::write(path.join(name), image)?;
                    kept += pages;
                }
                Node::Dir(_) => {
                    std::fs::create_dir(path.join(name))?;
                    kept += self.write_disk(*ino, &path.join(name), loss)?;
                }
            }
        }
        Ok(kept)
    }
}

/// The FUSE face of `State`.
struct LazyFs(Arc<Mutex<State>>);

impl LazyFs {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("the file system's lock")
    }

    /// Run a changing operation for `req`, counted (see `State::step`).
    fn change<T>(&self, req: &Request, op: impl FnOnce(&mut State) -> Result<T, Errno>) -> Result<T, Errno> {
        let mut s = self.state();
        s.step(req.pid())?;
        op(&mut s)
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
        req: &Request,
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
        let attr = match size {
            Some(len) => self.change(req, |s| {
                s.file(ino.0)?.resize(len);
                s.attr(ino.0)
            }),
            None => self.state().attr(ino.0),
        };
        match attr {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        let dir = Node::Dir(Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
        });
        answer_entry(reply, self.change(req, |s| s.create(parent.0, name, dir)));
    }

    fn create(
        &self,
        req: &Request,
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
        match self.change(req, |s| s.create(parent.0, name, file)) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        answer(reply, self.change(req, |s| s.remove(parent.0, name, false)));
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        answer(reply, self.change(req, |s| s.remove(parent.0, name, true)));
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        answer(
            reply,
            self.change(req, |s| s.rename((parent.0, name), (newparent.0, newname), flags)),
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
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.change(req, |s| s.file(ino.0).map(|f| f.write(offset, data))) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // Closing a file makes nothing durable.
        reply.ok();
    }

    fn fsync(&self, req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        answer(reply, self.change(req, |s| s.fsync(ino.0, datasync)));
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

    fn fsyncdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        answer(reply, self.change(req, |s| s.fsyncdir(ino.0)));
    }
}

/// A mounted `LazyFs` over a backing directory.
pub struct Disk {
    backing: PathBuf,
    mountpoint: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
}

/// What a cut did.
pub struct Cut {
    /// Changing operations since the mount.
    pub ops: u64,
    /// The power went out at an operation (`cut_at`), not after the fact.
    pub at_op: bool,
    /// What was not durable, as `State::unsynced` lists it.
    pub dropped: Vec<String>,
    /// Unsynced pages that reached the disk all the same (`Loss::TornPages`).
    pub kept_pages: usize,
}

impl Disk {
    /// Mount the disk held in `backing` (a directory) at `mountpoint`. With
    /// `cut_at`, the power goes out at that changing operation (write,
    /// truncate, create, rename, unlink, fsync): its caller is killed with
    /// SIGKILL before it is answered, and from then on every changing
    /// operation fails with EIO and changes nothing.
    pub fn mount(
        backing: &Path,
        mountpoint: &Path,
        fdatasync: Fdatasync,
        cut_at: Option<u64>,
    ) -> std::io::Result<Disk> {
        let state = Arc::new(Mutex::new(State::load(backing, fdatasync, cut_at)?));
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

    /// From now on, the power goes out at the `after`th changing operation
    /// (none with `None`), instead of at the mount's `cut_at`.
    pub fn arm(&self, after: Option<u64>) {
        let mut state = self.state.lock().expect("the file system's lock");
        state.cut_at = after.map(|n| state.ops + n);
    }

    /// The power went out at `cut_at`.
    pub fn power_out(&self) -> bool {
        self.state.lock().expect("the file system's lock").out
    }

    /// Cut the power: unmount (every process using the disk must be gone) and
    /// leave in the backing directory what was durable and, as `loss` says,
    /// some of what was not.
    pub fn cut(mut self, loss: Loss) -> Cut {
        if let Err(e) = self.unmount() {
            panic!("{e}");
        }
        let state = self.state.lock().expect("the file system's lock");
        std::fs::remove_dir_all(&self.backing).expect("the backing directory is cleared");
        std::fs::create_dir(&self.backing).expect("the backing directory is made again");
        let kept_pages = state
            .write_disk(ROOT, &self.backing, loss)
            .expect("what the disk holds is written");
        Cut {
            ops: state.ops,
            at_op: state.out,
            dropped: state.unsynced(),
            kept_pages,
        }
    }

    fn unmount(&mut self) -> Result<(), String> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) => {
                // Still in use: detach it, so no mount outlives the test.
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.mountpoint)
                    .status();
                Err(format!(
                    "{} was still in use at the cut: {e}",
                    self.mountpoint.display()
                ))
            }
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}
