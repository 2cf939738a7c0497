//! The change stream's append through the stream key API, for a thread that
//! holds the Redis lock. It does what `XADD key MAXLEN ~ n * field value...`
//! does: the entry, the approximate trim, the `xadd` (and `xtrim`) keyspace
//! notifications, WATCH and client tracking invalidated and blocked readers
//! woken (`RM_CloseKey` signals the key as modified and ready). It is
//! replicated as Redis replicates its own XADD: with the ID the entry got
//! and an exact trim to the length left, so that replicas and the AOF hold
//! the same entries. Without `RM_Call` there is no client, no argument
//! parsing and no reply, and the strings every entry repeats (the field
//! names, the stream's key) are made once: the append runs about 40%
//! fewer instructions (bench/README.md, "Change stream").

use super::keyspace::{api, notify, Ctx, OpenKey, Written};
use super::string::OwnedString;
use redis_module::raw;
use std::cell::RefCell;
use std::os::raw::{c_int, c_longlong};
use std::ptr::{self, NonNull};
use zksync_core::mirror::keyspace::WriteError;

/// Field/value pairs an entry may have.
const MAX_FIELDS: usize = 6;

/// A string kept by this thread (interned, or the stream's key), lent for an append.
type Str = NonNull<raw::RedisModuleString>;

thread_local! {
    /// Field names and XADD's words, made once per thread and never freed
    /// (the module cannot be unloaded).
    static INTERNED: RefCell<Vec<(&'static [u8], Str)>> = const { RefCell::new(Vec::new()) };
    /// The stream's key, kept while the config names the same one; freed
    /// when replaced, during an append (so under the lock).
    static STREAM_KEY: RefCell<Option<(Vec<u8>, OwnedString)>> = const { RefCell::new(None) };
}

/// Appends an entry of `fields` to the stream at `key` (created if missing)
/// with a new ID, then trims the stream to about `maxlen` entries (0: never).
/// A field value that is the very slice `written` holds takes its string.
pub fn append(
    ctx: Ctx,
    key: &[u8],
    maxlen: i64,
    fields: &[(&'static [u8], &[u8])],
    written: Option<&Written>,
) -> Result<(), WriteError> {
    let (Some(name), Some(args)) = (stream_key(key), Args::new(fields, written)) else {
        return Err(WriteError::NoString);
    };
    let Some(open) = OpenKey::new(ctx, name, raw::REDISMODULE_WRITE) else {
        return Err(WriteError::CannotOpen);
    };
    let (Some(key_type), Some(stream_add), Some(trim), Some(length)) = (
        api!(RedisModule_KeyType),
        api!(RedisModule_StreamAdd),
        api!(RedisModule_StreamTrimByLength),
        api!(RedisModule_ValueLength),
    ) else {
        return Err(WriteError::NoStreamApi);
    };
    let key = open.0.as_ptr();
    // SAFETY: the key is open.
    let held = unsafe { key_type(key) } as isize;
    if held != raw::REDISMODULE_KEYTYPE_EMPTY && held != raw::REDISMODULE_KEYTYPE_STREAM {
        return Err(WriteError::WrongType);
    }
    let mut id = raw::RedisModuleStreamID { ms: 0, seq: 0 };
    let flags = raw::REDISMODULE_STREAM_ADD_AUTOID as c_int;
    // SAFETY: the key is open for writing and empty or a stream; `args`
    // holds `2 * pairs` live strings, which Redis copies.
    if unsafe { stream_add(key, flags, &mut id, args.argv(), args.pairs()) } != raw::REDISMODULE_OK as c_int {
        return Err(WriteError::AddRefused);
    }
    let mut trimmed = 0;
    if maxlen > 0 {
        let approx = raw::REDISMODULE_STREAM_TRIM_APPROX as c_int;
        // SAFETY: the key is open for writing and holds a stream.
        trimmed = unsafe { trim(key, approx, maxlen) };
    }
    // SAFETY: the key is open and holds a stream.
    let left = unsafe { length(key) } as c_longlong;
    drop(open);
    notify(ctx, raw::REDISMODULE_NOTIFY_STREAM, c"xadd", name);
    if trimmed > 0 {
        notify(ctx, raw::REDISMODULE_NOTIFY_STREAM, c"xtrim", name);
    }
    replicate(ctx, name, &id, (maxlen > 0).then_some(left), &args);
    Ok(())
}

/// `XADD key [MAXLEN = left] ms-seq field value...`: the entry as it was
/// added, and the trim as it came out (`~` trims whole nodes, so a replica
/// told `~` could keep other entries).
fn replicate(ctx: Ctx, name: Str, id: &raw::RedisModuleStreamID, left: Option<c_longlong>, args: &Args) {
    let (Some(replicate), Some(maxlen), Some(exact)) =
        (api!(RedisModule_Replicate), interned(b"MAXLEN"), interned(b"="))
    else {
        return;
    };
    let (mut ms, mut seq) = (itoa::Buffer::new(), itoa::Buffer::new());
    let mut text = [0u8; 41];
    let len = {
        let (ms, seq) = (ms.format(id.ms).as_bytes(), seq.format(id.seq).as_bytes());
        text[..ms.len()].copy_from_slice(ms);
        text[ms.len()] = b'-';
        text[ms.len() + 1..][..seq.len()].copy_from_slice(seq);
        ms.len() + 1 + seq.len()
    };
    let (id, argv, argc) = (text.as_ptr(), args.argv(), args.len);
    let (name, maxlen, exact) = (name.as_ptr(), maxlen.as_ptr(), exact.as_ptr());
    // SAFETY: the lock is held; each format letter has its argument: "s" a
    // live RedisModuleString, "l" a long long, "b" a buffer and its length,
    // "v" an array of live RedisModuleStrings and its length.
    unsafe {
        match left {
            Some(left) => replicate(
                ctx,
                c"XADD".as_ptr(),
                c"ssslbv".as_ptr(),
                name,
                maxlen,
                exact,
                left,
                id,
                len,
                argv,
                argc,
            ),
            None => replicate(ctx, c"XADD".as_ptr(), c"sbv".as_ptr(), name, id, len, argv, argc),
        }
    };
}

/// A string with `bytes`, made on first use and kept.
fn interned(bytes: &'static [u8]) -> Option<Str> {
    INTERNED.with_borrow_mut(|interned| {
        // The same literal is the same slice: no bytes compared.
        let same = interned.iter().find(|(b, _)| ptr::eq(*b, bytes));
        if let Some(&(_, string)) = same.or_else(|| interned.iter().find(|(b, _)| *b == bytes)) {
            return Some(string);
        }
        let string = OwnedString::new(bytes)?.into_raw();
        interned.push((bytes, string));
        Some(string)
    })
}

/// The stream's key as a string, made again only when the key changes.
fn stream_key(key: &[u8]) -> Option<Str> {
    STREAM_KEY.with_borrow_mut(|kept| {
        match kept {
            Some((bytes, string)) if bytes.as_slice() == key => return Some(string.as_non_null()),
            // Freed now, under the lock.
            _ => *kept = None,
        }
        let string = OwnedString::new(key)?;
        let lent = string.as_non_null();
        *kept = Some((key.to_vec(), string));
        Some(lent)
    })
}

/// An entry's fields as the API takes them, in one array on the stack: the
/// interned names, and the values, made here (and freed on drop) unless
/// the key write made them.
struct Args {
    strings: [*mut raw::RedisModuleString; 2 * MAX_FIELDS],
    /// The values made here, which `strings` points to; freed on drop.
    owned: [Option<OwnedString>; 2 * MAX_FIELDS],
    len: usize,
}

impl Args {
    fn new(fields: &[(&'static [u8], &[u8])], written: Option<&Written>) -> Option<Args> {
        if fields.len() > MAX_FIELDS {
            return None;
        }
        let mut args = Args {
            strings: [ptr::null_mut(); 2 * MAX_FIELDS],
            owned: Default::default(),
            len: 0,
        };
        for &(name, value) in fields {
            args.strings[args.len] = interned(name)?.as_ptr();
            args.len += 1;
            let reused = written.and_then(|w| w.strings.iter().find(|(bytes, _)| ptr::eq(*bytes, value)));
            args.strings[args.len] = match reused {
                Some((_, string)) => string.as_ptr(),
                None => {
                    // A plain string (not an integer-encoded one, which a
                    // stream could not take).
                    let string = OwnedString::new(value)?;
                    let ptr = string.as_ptr();
                    args.owned[args.len] = Some(string);
                    ptr
                }
            };
            args.len += 1;
        }
        Some(args)
    }

    /// The array as the API takes it; Redis only reads it.
    fn argv(&self) -> *mut *mut raw::RedisModuleString {
        self.strings.as_ptr().cast_mut()
    }

    fn pairs(&self) -> i64 {
        (self.len / 2) as i64
    }
}
