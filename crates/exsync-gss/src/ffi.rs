//! The few GSSAPI calls we need (RFC 2744 plus MIT's credential-store and password extensions),
//! resolved from `libgssapi_krb5.so.2` when first used. Every raw pointer stays in this module:
//! what leaves it owns its handle and releases it on drop.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CString};
use std::ptr;
use std::sync::OnceLock;

use libloading::Library;

/// Status words of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    pub major: u32,
    pub minor: u32,
}

pub(crate) const COMPLETE: u32 = 0;
pub(crate) const CONTINUE_NEEDED: u32 = 1;
/// The routine-error bits of a major status (RFC 2744 §3.9.1).
pub(crate) fn routine_error(major: u32) -> u32 {
    (major >> 16) & 0xff
}
pub(crate) const ROUTINE_BAD_BINDINGS: u32 = 4;
pub(crate) const ROUTINE_CREDENTIALS_EXPIRED: u32 = 11;

pub(crate) const FLAG_MUTUAL: u32 = 2;
pub(crate) const FLAG_SEQUENCE: u32 = 8;
/// MIT (1.19+): the acceptor verified channel bindings the initiator sent.
pub(crate) const FLAG_CHANNEL_BOUND: u32 = 0x800;

const USAGE_INITIATE: i32 = 1;
const USAGE_ACCEPT: i32 = 2;
const INDEFINITE: u32 = 0xffff_ffff;

#[repr(C)]
struct Buffer {
    length: usize,
    value: *mut c_void,
}

impl Buffer {
    fn empty() -> Buffer {
        Buffer {
            length: 0,
            value: ptr::null_mut(),
        }
    }

    /// Borrows `bytes` for the duration of a call that only reads it.
    fn borrowed(bytes: &[u8]) -> Buffer {
        Buffer {
            length: bytes.len(),
            value: bytes.as_ptr().cast_mut().cast(),
        }
    }
}

#[repr(C)]
struct OidDesc {
    length: u32,
    elements: *const c_void,
}

#[repr(C)]
struct OidSet {
    count: usize,
    elements: *const OidDesc,
}

#[repr(C)]
struct Bindings {
    initiator_addrtype: u32,
    initiator_address: Buffer,
    acceptor_addrtype: u32,
    acceptor_address: Buffer,
    application_data: Buffer,
}

#[repr(C)]
struct KeyValue {
    key: *const c_char,
    value: *const c_char,
}

#[repr(C)]
struct KeyValueSet {
    count: u32,
    elements: *const KeyValue,
}

type Handle = *mut c_void;

// DER contents of the OIDs we name (without tag and length).
/// 1.3.6.1.5.5.2, SPNEGO: what HTTP Negotiate carries.
const OID_SPNEGO: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02];
/// 1.2.840.113554.1.2.2, Kerberos 5.
const OID_KRB5: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// 1.2.840.113554.1.2.1.4, `service@host`.
const OID_NT_HOSTBASED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x01, 0x04];
/// 1.2.840.113554.1.2.2.1, a Kerberos principal name (`user@REALM`).
const OID_NT_KRB5_PRINCIPAL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01];

fn oid(der: &'static [u8]) -> OidDesc {
    OidDesc {
        length: der.len() as u32,
        elements: der.as_ptr().cast(),
    }
}

type ImportName = unsafe extern "C" fn(*mut u32, *const Buffer, *const OidDesc, *mut Handle) -> u32;
type ReleaseHandle = unsafe extern "C" fn(*mut u32, *mut Handle) -> u32;
type DisplayName = unsafe extern "C" fn(*mut u32, Handle, *mut Buffer, *mut *const OidDesc) -> u32;
type ReleaseBuffer = unsafe extern "C" fn(*mut u32, *mut Buffer) -> u32;
type AcquireWithPassword = unsafe extern "C" fn(
    *mut u32,
    Handle,
    *const Buffer,
    u32,
    *const OidSet,
    i32,
    *mut Handle,
    *mut *mut OidSet,
    *mut u32,
) -> u32;
type AcquireFrom = unsafe extern "C" fn(
    *mut u32,
    Handle,
    u32,
    *const OidSet,
    i32,
    *const KeyValueSet,
    *mut Handle,
    *mut *mut OidSet,
    *mut u32,
) -> u32;
type InquireCred = unsafe extern "C" fn(
    *mut u32,
    Handle,
    *mut Handle,
    *mut u32,
    *mut i32,
    *mut *mut OidSet,
) -> u32;
type SetNegMechs = unsafe extern "C" fn(*mut u32, Handle, *const OidSet) -> u32;
type InitSecContext = unsafe extern "C" fn(
    *mut u32,
    Handle,
    *mut Handle,
    Handle,
    *const OidDesc,
    u32,
    u32,
    *const Bindings,
    *const Buffer,
    *mut *const OidDesc,
    *mut Buffer,
    *mut u32,
    *mut u32,
) -> u32;
type AcceptSecContext = unsafe extern "C" fn(
    *mut u32,
    *mut Handle,
    Handle,
    *const Buffer,
    *const Bindings,
    *mut Handle,
    *mut *const OidDesc,
    *mut Buffer,
    *mut u32,
    *mut u32,
    *mut Handle,
) -> u32;
type DeleteSecContext = unsafe extern "C" fn(*mut u32, *mut Handle, *mut Buffer) -> u32;
type DisplayStatus =
    unsafe extern "C" fn(*mut u32, u32, i32, *const OidDesc, *mut u32, *mut Buffer) -> u32;

struct Api {
    import_name: ImportName,
    release_name: ReleaseHandle,
    display_name: DisplayName,
    release_buffer: ReleaseBuffer,
    acquire_with_password: AcquireWithPassword,
    acquire_from: AcquireFrom,
    inquire_cred: InquireCred,
    set_neg_mechs: SetNegMechs,
    release_cred: ReleaseHandle,
    init_sec_context: InitSecContext,
    accept_sec_context: AcceptSecContext,
    delete_sec_context: DeleteSecContext,
    display_status: DisplayStatus,
    // Kept loaded for the life of the process: the function pointers above point into it.
    _lib: Library,
}

/// The library's file name; the unversioned `.so` is only in the -dev package.
pub(crate) const LIBRARY: &str = "libgssapi_krb5.so.2";

fn load() -> Result<Api, String> {
    // SAFETY: loading MIT's GSSAPI runs its initialisers, which only set up error tables.
    let lib = unsafe { Library::new(LIBRARY) }.map_err(|e| e.to_string())?;
    macro_rules! sym {
        ($name:literal) => {
            // SAFETY: the type matches the C prototype in MIT's gssapi.h / gssapi_ext.h.
            *unsafe { lib.get($name) }.map_err(|e| e.to_string())?
        };
    }
    Ok(Api {
        import_name: sym!(b"gss_import_name\0"),
        release_name: sym!(b"gss_release_name\0"),
        display_name: sym!(b"gss_display_name\0"),
        release_buffer: sym!(b"gss_release_buffer\0"),
        acquire_with_password: sym!(b"gss_acquire_cred_with_password\0"),
        acquire_from: sym!(b"gss_acquire_cred_from\0"),
        inquire_cred: sym!(b"gss_inquire_cred\0"),
        set_neg_mechs: sym!(b"gss_set_neg_mechs\0"),
        release_cred: sym!(b"gss_release_cred\0"),
        init_sec_context: sym!(b"gss_init_sec_context\0"),
        accept_sec_context: sym!(b"gss_accept_sec_context\0"),
        delete_sec_context: sym!(b"gss_delete_sec_context\0"),
        display_status: sym!(b"gss_display_status\0"),
        _lib: lib,
    })
}

fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// The library for a call that reports a status: failing to load is a GSS failure here, and
/// callers that care why check [`available`] first.
fn loaded() -> Result<&'static Api, Status> {
    api().map_err(|_| Status {
        major: 13 << 16,
        minor: 0,
    })
}

/// Whether the library can be loaded, and why not.
pub(crate) fn available() -> Result<(), String> {
    api().map(|_| ())
}

fn take_buffer(api: &Api, buffer: &mut Buffer) -> Vec<u8> {
    let bytes = if buffer.value.is_null() || buffer.length == 0 {
        Vec::new()
    } else {
        // SAFETY: the library filled `buffer` with `length` readable bytes at `value`.
        unsafe { std::slice::from_raw_parts(buffer.value.cast::<u8>(), buffer.length) }.to_vec()
    };
    let mut minor = 0;
    // SAFETY: `buffer` came from the library and is released once.
    unsafe { (api.release_buffer)(&mut minor, buffer) };
    bytes
}

/// Readable text for a status: the GSS routine message and the mechanism's (Kerberos) message.
pub(crate) fn status_text(status: Status) -> String {
    let Ok(api) = api() else {
        return format!("GSS major {:#x}, minor {}", status.major, status.minor);
    };
    let mut parts = Vec::new();
    for (value, kind) in [(status.major, 1), (status.minor, 2)] {
        if value == 0 {
            continue;
        }
        let mut context = 0u32;
        // A bounded loop: the library's message chain is short, and a broken one must not spin.
        for _ in 0..8 {
            let mut minor = 0;
            let mut out = Buffer::empty();
            // SAFETY: all pointers are valid for the call; `out` is released by take_buffer.
            let major = unsafe {
                (api.display_status)(&mut minor, value, kind, ptr::null(), &mut context, &mut out)
            };
            let text = String::from_utf8_lossy(&take_buffer(api, &mut out)).into_owned();
            if major != COMPLETE {
                break;
            }
            if !text.is_empty() {
                parts.push(text);
            }
            if context == 0 {
                break;
            }
        }
    }
    parts.join(": ")
}

/// Which syntax a name is written in.
#[derive(Clone, Copy)]
pub(crate) enum NameKind {
    /// `HTTP@mail.contoso.com`
    HostBasedService,
    /// `svc-sync@CONTOSO.COM`
    Principal,
}

/// An imported name, released on drop.
pub(crate) struct Name(Handle);

// SAFETY: a name is not changed after import; MIT allows using it from any thread.
unsafe impl Send for Name {}
// SAFETY: as above; the calls we make only read it.
unsafe impl Sync for Name {}

impl Name {
    pub(crate) fn import(text: &str, kind: NameKind) -> Result<Name, Status> {
        let api = loaded()?;
        let kind = oid(match kind {
            NameKind::HostBasedService => OID_NT_HOSTBASED,
            NameKind::Principal => OID_NT_KRB5_PRINCIPAL,
        });
        let input = Buffer::borrowed(text.as_bytes());
        let mut minor = 0;
        let mut name: Handle = ptr::null_mut();
        // SAFETY: input and kind outlive the call; the name is owned by the returned value.
        let major = unsafe { (api.import_name)(&mut minor, &input, &kind, &mut name) };
        if major != COMPLETE {
            return Err(Status { major, minor });
        }
        Ok(Name(name))
    }
}

fn display(api: &Api, name: Handle) -> String {
    let mut minor = 0;
    let mut out = Buffer::empty();
    // SAFETY: `name` is a live name handle; `out` is released by take_buffer.
    let major = unsafe { (api.display_name)(&mut minor, name, &mut out, ptr::null_mut()) };
    if major != COMPLETE {
        return String::new();
    }
    String::from_utf8_lossy(&take_buffer(api, &mut out)).into_owned()
}

/// Releases a name or credential handle with the library's matching call.
fn release(handle: &mut Handle, call: fn(&Api) -> ReleaseHandle) {
    if let Ok(api) = api() {
        let mut minor = 0;
        // SAFETY: the handle is ours, of the kind `call` releases, and released once.
        unsafe { call(api)(&mut minor, handle) };
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        release(&mut self.0, |api| api.release_name);
    }
}

/// A credential handle (an initiator's tickets, or an acceptor's keytab), released on drop.
pub(crate) struct Cred(Handle);

// SAFETY: MIT's credential handles lock internally and may be used from any thread.
unsafe impl Send for Cred {}
// SAFETY: as above; concurrent init_sec_context calls on one credential are supported by MIT.
unsafe impl Sync for Cred {}

fn spnego_set() -> (OidDesc, ()) {
    (oid(OID_SPNEGO), ())
}

impl Cred {
    /// An initiator credential for `name` from its password: MIT asks the KDC for a ticket-granting
    /// ticket now and keeps it (and the service tickets after it) in a private memory cache.
    pub(crate) fn with_password(name: &Name, password: &str) -> Result<Cred, Status> {
        let api = loaded()?;
        let (spnego, ()) = spnego_set();
        let mechs = OidSet {
            count: 1,
            elements: &spnego,
        };
        let pw = Buffer::borrowed(password.as_bytes());
        let mut minor = 0;
        let mut cred: Handle = ptr::null_mut();
        // SAFETY: every input outlives the call; the credential is owned by the returned value.
        let major = unsafe {
            (api.acquire_with_password)(
                &mut minor,
                name.0,
                &pw,
                INDEFINITE,
                &mechs,
                USAGE_INITIATE,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        Cred::acquired(api, Status { major, minor }, cred)
    }

    /// A credential from MIT's credential store: `client_keytab` and `ccache` for an initiator,
    /// `keytab` for an acceptor (then `name` may be absent: any key in the keytab).
    pub(crate) fn from_store(
        name: Option<&Name>,
        store: &[(&str, &str)],
        accept: bool,
    ) -> Result<Cred, Status> {
        let api = loaded()?;
        let invalid = Status {
            major: 2 << 16,
            minor: 0,
        };
        let owned: Vec<(CString, CString)> = store
            .iter()
            .map(|(k, v)| Ok((CString::new(*k)?, CString::new(*v)?)))
            .collect::<Result<_, std::ffi::NulError>>()
            .map_err(|_| invalid)?;
        let elements: Vec<KeyValue> = owned
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.as_ptr(),
                value: v.as_ptr(),
            })
            .collect();
        let set = KeyValueSet {
            count: u32::try_from(elements.len()).map_err(|_| invalid)?,
            elements: elements.as_ptr(),
        };
        let (spnego, ()) = spnego_set();
        let mechs = OidSet {
            count: 1,
            elements: &spnego,
        };
        let mut minor = 0;
        let mut cred: Handle = ptr::null_mut();
        // SAFETY: every input outlives the call; the credential is owned by the returned value.
        let major = unsafe {
            (api.acquire_from)(
                &mut minor,
                name.map_or(ptr::null_mut(), |n| n.0),
                INDEFINITE,
                &mechs,
                if accept { USAGE_ACCEPT } else { USAGE_INITIATE },
                &set,
                &mut cred,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        Cred::acquired(api, Status { major, minor }, cred)
    }

    /// The credential an acquire call returned, limited to Kerberos, or its failure.
    fn acquired(api: &Api, status: Status, cred: Handle) -> Result<Cred, Status> {
        if status.major != COMPLETE {
            return Err(status);
        }
        let cred = Cred(cred);
        cred.limit_to_kerberos(api);
        Ok(cred)
    }

    /// SPNEGO may only negotiate Kerberos: an installed NTLM mechanism must not be chosen
    /// behind the configuration's back.
    fn limit_to_kerberos(&self, api: &Api) {
        let krb5 = oid(OID_KRB5);
        let set = OidSet {
            count: 1,
            elements: &krb5,
        };
        let mut minor = 0;
        // SAFETY: the credential is live and the set outlives the call.
        unsafe { (api.set_neg_mechs)(&mut minor, self.0, &set) };
    }

    /// The credential's principal and remaining lifetime in seconds.
    pub(crate) fn inquire(&self) -> Result<(String, u32), Status> {
        let api = loaded()?;
        let mut minor = 0;
        let mut name: Handle = ptr::null_mut();
        let mut lifetime = 0u32;
        // SAFETY: the credential is live; the returned name is released below.
        let major = unsafe {
            (api.inquire_cred)(
                &mut minor,
                self.0,
                &mut name,
                &mut lifetime,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if major != COMPLETE {
            return Err(Status { major, minor });
        }
        let name = Name(name);
        Ok((display(api, name.0), lifetime))
    }
}

impl Drop for Cred {
    fn drop(&mut self) {
        release(&mut self.0, |api| api.release_cred);
    }
}

/// One security context, initiator's or acceptor's, deleted on drop.
pub(crate) struct Context(Handle);

// SAFETY: a context is used by one thread at a time (it is not Sync), which MIT allows.
unsafe impl Send for Context {}

/// What one step produced.
pub(crate) struct Step {
    pub status: Status,
    pub token: Vec<u8>,
    pub flags: u32,
    /// The initiator's name (acceptor side, once complete).
    pub peer: String,
}

fn bindings(application_data: &[u8]) -> Bindings {
    Bindings {
        initiator_addrtype: 0,
        initiator_address: Buffer::empty(),
        acceptor_addrtype: 0,
        acceptor_address: Buffer::empty(),
        application_data: Buffer::borrowed(application_data),
    }
}

impl Context {
    pub(crate) fn new() -> Context {
        Context(ptr::null_mut())
    }

    /// One initiator step toward `target` over SPNEGO.
    pub(crate) fn init(
        &mut self,
        cred: &Cred,
        target: &Name,
        flags: u32,
        channel_binding: Option<&[u8]>,
        input: Option<&[u8]>,
    ) -> Step {
        let Ok(api) = api() else {
            return Step::failed(Status {
                major: 13 << 16,
                minor: 0,
            });
        };
        let spnego = oid(OID_SPNEGO);
        let cb = channel_binding.map(bindings);
        let input = input.map(Buffer::borrowed);
        let mut minor = 0;
        let mut out = Buffer::empty();
        let mut ret_flags = 0u32;
        // SAFETY: every input outlives the call; the context is ours; `out` is released below.
        let major = unsafe {
            (api.init_sec_context)(
                &mut minor,
                cred.0,
                &mut self.0,
                target.0,
                &spnego,
                flags,
                0,
                cb.as_ref().map_or(ptr::null(), |b| b as *const Bindings),
                input.as_ref().map_or(ptr::null(), |b| b as *const Buffer),
                ptr::null_mut(),
                &mut out,
                &mut ret_flags,
                ptr::null_mut(),
            )
        };
        Step {
            status: Status { major, minor },
            token: take_buffer(api, &mut out),
            flags: ret_flags,
            peer: String::new(),
        }
    }

    /// One acceptor step on `input`, checking `channel_binding` when given.
    pub(crate) fn accept(
        &mut self,
        cred: &Cred,
        input: &[u8],
        channel_binding: Option<&[u8]>,
    ) -> Step {
        let Ok(api) = api() else {
            return Step::failed(Status {
                major: 13 << 16,
                minor: 0,
            });
        };
        let cb = channel_binding.map(bindings);
        let input = Buffer::borrowed(input);
        let mut minor = 0;
        let mut out = Buffer::empty();
        let mut src: Handle = ptr::null_mut();
        let mut ret_flags = 0u32;
        // SAFETY: every input outlives the call; the context is ours; `out` and `src` are
        // released below.
        let major = unsafe {
            (api.accept_sec_context)(
                &mut minor,
                &mut self.0,
                cred.0,
                &input,
                cb.as_ref().map_or(ptr::null(), |b| b as *const Bindings),
                &mut src,
                ptr::null_mut(),
                &mut out,
                &mut ret_flags,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        let peer = if src.is_null() {
            String::new()
        } else {
            let name = Name(src);
            display(api, name.0)
        };
        Step {
            status: Status { major, minor },
            token: take_buffer(api, &mut out),
            flags: ret_flags,
            peer,
        }
    }
}

impl Step {
    fn failed(status: Status) -> Step {
        Step {
            status,
            token: Vec::new(),
            flags: 0,
            peer: String::new(),
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if self.0.is_null() {
            return;
        }
        if let Ok(api) = api() {
            let mut minor = 0;
            // SAFETY: the context is ours and deleted once; no output token is wanted.
            unsafe { (api.delete_sec_context)(&mut minor, &mut self.0, ptr::null_mut()) };
        }
    }
}
