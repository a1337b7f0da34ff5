//! The Redis (or Valkey) store: limits and bans shared by every host using one server, a
//! Sentinel-managed primary, or a cluster.
//!
//! One request costs one round trip: the client's ban and every applicable limit travel
//! together. On one server (or a Sentinel's primary) that is a pipeline of plain commands: each
//! limit counts the request first and reads its count back, and a request refused by any limit
//! (or banned) has its counts taken back by commands sent without waiting for their answers.
//! Plain commands because a script costs the server more than the work it does: measured here,
//! the five sorted-set commands of a sliding window took 7-9 µs of server time as a pipeline and
//! 24 µs inside a script (each `redis.call` costs about 3 µs on a cold cache). GCRA's
//! read-modify-write needs a script, and so does a cluster (below). Either way the limits run on
//! the server's clock — scripts ask it, the pipeline uses this host's clock corrected by the
//! offset last measured with `TIME` — so hosts whose clocks disagree still share one window.
//! Reading where a client stands ([`Store::peek`]) is one pipeline of plain reads of the same
//! keys (`HMGET`, `GET`, `ZCOUNT`, `ZRANGEBYSCORE`), which writes nothing. Keys are
//!
//! ```text
//! {prefix}ban:{<ip>}                       hash {until, reason}, expires with the ban
//! {prefix}bans                             sorted set of banned subjects by end time (listing)
//! {prefix}rl:{<ip>}:<rule>:log             sliding window: sorted set of admitted requests
//! {prefix}rl:{<ip>}:<rule>:fixed:<n>       fixed window number n: a counter
//! {prefix}rl:{<ip>}:<rule>:counter:<n>     sliding counter: window number n's counter
//!                                          (on a cluster, both are one hash without `:<n>`)
//! {prefix}rl:{<ip>}:<rule>:gcra            GCRA: the theoretical arrival time
//! {prefix}strikes:{<ip>}                   sorted set of strike times, expires after the window
//! ```
//!
//! The braces are Redis Cluster hash tags: every key of one client lives in one slot. On a
//! cluster, a request whose limits concern several subjects (the client, everyone, an endpoint)
//! makes one script call per subject, the client's first; when a later one refuses, the earlier
//! counts are taken back, so a refused request is still counted by none.
//!
//! Every key has a TTL, so nothing is left behind. A connection belongs to one process: after a
//! `fork()` (gunicorn `--preload`) the child notices the pid changed and connects afresh.
//!
//! **Outages.** When Redis cannot be reached (connect 50 ms, read/write 250 ms timeouts), the
//! store says so once ([`Store::take_warning`]) and, by default, carries on with this process's
//! own [`MemoryStore`] (which also remembers the bans this process made or met, so they still
//! hold); with `fail_closed` it answers [`Admission::Unavailable`] (503) instead.
//! Every half second one request tries to reconnect. Bans and unbans made meanwhile are kept and
//! written to Redis when it is back, so none is lost.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Connection, ConnectionAddr, ConnectionLike, IntoConnectionInfo, RedisResult, Script,
    Value,
};

use super::{Admission, Ban, Charge, MemoryStore, Store, StoreNote, StoreStats, Strike, Subject};
use crate::config::RedisOptions;
use crate::limit::{self, Algorithm, Cell, Clock, Quota, Rule};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(50);
const IO_TIMEOUT: Duration = Duration::from_millis(250);
/// While Redis is away, how often a request may try to reconnect.
const PROBE_EVERY_MS: u64 = 500;
/// How often the server's clock is measured again (a `TIME` riding along with a request).
const RESYNC_EVERY_MS: u64 = 10_000;

/// Checks the ban, then every limit; counts only when all allow. The server's clock. Used for
/// GCRA and on a cluster; the other algorithms on one server go through
/// [`RedisStore::admit_plain`] instead.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
if ARGV[1] == '1' then
  local b = redis.call('HMGET', KEYS[1], 'until', 'reason')
  if b[1] and tonumber(b[1]) > now then
    return {1, tonumber(b[1]), b[2] or '', {}}
  end
end
local commit = ARGV[2] == '1'
local n = tonumber(ARGV[3])
-- On one server, fixed windows and sliding counters keep the plain pipeline's layout (a
-- counter per window number), so that requests counted here and there share one count.
local plain = ARGV[4 * n + 4] == '1'
local quotas = {}
local writes = {}
local refused, wait = 0, -1
local function ceil_div(a, b) return math.floor((a + b - 1) / b) end
for i = 1, n do
  local base = 4 * i
  local algo = ARGV[base]
  local limit = tonumber(ARGV[base + 1])
  local w = tonumber(ARGV[base + 2])
  local key = KEYS[1 + i]
  local ok, remaining, reset, retry = 1, 0, 0, 0
  if algo == 'log' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - w)
    local count = redis.call('ZCARD', key)
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    reset = w
    if oldest[2] then reset = tonumber(oldest[2]) + w - now end
    if count >= limit then
      ok, retry = 0, math.max(reset, 1)
    else
      remaining = limit - count - 1
      writes[#writes + 1] = {1, key, w, ARGV[base + 3]}
    end
  elseif algo == 'fixed' then
    local id = math.floor(now / w)
    local count, k = 0, nil
    if plain then
      k = key .. ':' .. string.format('%d', id)
      count = tonumber(redis.call('GET', k) or '0')
    else
      local v = redis.call('HMGET', key, 'id', 'n')
      if v[1] and tonumber(v[1]) >= id then id = tonumber(v[1]); count = tonumber(v[2]) end
    end
    local e = (id + 1) * w
    reset = e - now
    if count >= limit then
      ok, retry = 0, reset
    else
      remaining = limit - count - 1
      if plain then
        writes[#writes + 1] = {5, k, e}
      else
        writes[#writes + 1] = {2, key, id, count + 1, e}
      end
    end
  elseif algo == 'gcra' then
    local wu = w * 1000
    local step = math.max(math.floor(wu / limit), 1)
    local tau = wu - step
    local nu = now * 1000
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < nu then tat = nu end
    if tat > nu + tau then
      ok = 0
      reset = ceil_div(tat - nu, 1000)
      retry = math.max(ceil_div(tat - tau - nu, 1000), 1)
    else
      local new_tat = tat + step
      remaining = math.floor((nu + tau + step - new_tat) / step)
      reset = ceil_div(new_tat - nu, 1000)
      writes[#writes + 1] = {3, key, new_tat, reset}
    end
  else
    local id = math.floor(now / w)
    local prev, cur = 0, 0
    local k
    if plain then
      k = key .. ':' .. string.format('%d', id)
      cur = tonumber(redis.call('GET', k) or '0')
      if id > 0 then
        prev = tonumber(redis.call('GET', key .. ':' .. string.format('%d', id - 1)) or '0')
      end
    else
      local v = redis.call('HMGET', key, 'id', 'p', 'c')
      if v[1] then
        local sid = tonumber(v[1])
        if sid >= id then id = sid; prev = tonumber(v[2]); cur = tonumber(v[3])
        elseif sid == id - 1 then prev = tonumber(v[3]) end
      end
    end
    local start = id * w
    local elapsed = math.min(math.max(now - start, 0), w - 1)
    reset = start + w - now
    if prev * (w - elapsed) + (cur + 1) * w > limit * w then
      ok = 0
      retry = w - elapsed
      if cur < limit and prev > 0 then
        local need = prev * w - (limit - cur - 1) * w
        local e = ceil_div(math.max(need, 0), prev)
        if e < w then retry = math.max(e - elapsed, 0) end
      elseif cur > 0 then
        local shrink = ceil_div(math.max(cur * w - (limit - 1) * w, 0), cur)
        retry = retry + math.min(shrink, w)
      end
      retry = math.max(retry, 1)
    else
      local used = prev * (w - elapsed) + (cur + 1) * w
      remaining = math.floor(math.max(limit * w - used, 0) / w)
      if plain then
        writes[#writes + 1] = {5, k, (id + 2) * w}
      else
        writes[#writes + 1] = {4, key, id, prev, cur + 1, 2 * w}
      end
    end
  end
  quotas[#quotas + 1] = ok
  quotas[#quotas + 1] = remaining
  quotas[#quotas + 1] = reset
  quotas[#quotas + 1] = retry
  if ok == 0 and retry > wait then refused, wait = i, retry end
end
if refused > 0 then return {2, refused - 1, '', quotas} end
if not commit then return {0, 0, '', quotas} end
for _, x in ipairs(writes) do
  if x[1] == 1 then
    redis.call('ZADD', x[2], now, x[4])
    redis.call('PEXPIRE', x[2], x[3])
  elseif x[1] == 2 then
    redis.call('HSET', x[2], 'id', x[3], 'n', x[4])
    redis.call('PEXPIREAT', x[2], x[5])
  elseif x[1] == 3 then
    redis.call('SET', x[2], x[3], 'PX', math.max(x[4], 1))
  elseif x[1] == 5 then
    redis.call('INCR', x[2])
    redis.call('PEXPIREAT', x[2], x[3])
  else
    redis.call('HSET', x[2], 'id', x[3], 'p', x[4], 'c', x[5])
    redis.call('PEXPIRE', x[2], x[6])
  end
end
return {0, 0, '', quotas}
";

/// Counts a strike; at the threshold, starts the count again and (optionally) bans. The ban's
/// entry in the listing index is added by the caller (the index may live on another node).
const STRIKE: &str = r"
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local threshold, w, ban_until = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - w)
local count = redis.call('ZCARD', KEYS[1]) + 1
redis.call('ZADD', KEYS[1], now, now_us .. ':' .. count)
redis.call('PEXPIRE', KEYS[1], w)
if count < threshold then return {count, 0} end
redis.call('DEL', KEYS[1])
if ban_until > 0 then
  redis.call('HSET', KEYS[2], 'until', ban_until, 'reason', ARGV[4])
  redis.call('PEXPIREAT', KEYS[2], ban_until)
  return {count, ban_until}
end
return {count, 0}
";

/// Sets a ban: its hash and its expiry, together.
const SET_BAN: &str = r"
redis.call('HSET', KEYS[1], 'until', ARGV[1], 'reason', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
";

/// Takes back the hits an admission counted (Cluster: a later slot's limit refused).
const UNDO: &str = r"
for i = 1, #KEYS do
  local algo, x = ARGV[2 * i - 1], ARGV[2 * i]
  if algo == 'log' then
    redis.call('ZREM', KEYS[i], x)
  elseif algo == 'gcra' then
    local v = redis.call('GET', KEYS[i])
    if v then redis.call('SET', KEYS[i], tonumber(v) - tonumber(x), 'KEEPTTL') end
  else
    local field = (algo == 'fixed') and 'n' or 'c'
    if tonumber(redis.call('HGET', KEYS[i], field) or '0') > 0 then
      redis.call('HINCRBY', KEYS[i], field, -1)
    end
  end
end
return 1
";

/// Deletes the keys matching `ARGV[1]`, all in the slot of `KEYS[1]` (one client's limits).
const RESET: &str = r"
local cursor = '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do redis.call('DEL', k) end
until cursor == '0'
return 1
";

/// `redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]`, split.
#[derive(Debug, PartialEq, Eq)]
struct SentinelUrl {
    sentinels: Vec<ConnectionAddr>,
    service: String,
    db: i64,
    username: Option<String>,
    password: Option<String>,
}

fn parse_sentinel(rest: &str) -> Result<SentinelUrl, String> {
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let (username, password) = match auth.map(|a| a.split_once(':').unwrap_or(("", a))) {
        Some((u, p)) => (
            (!u.is_empty()).then(|| u.to_owned()),
            (!p.is_empty()).then(|| p.to_owned()),
        ),
        None => (None, None),
    };
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut sentinels = Vec::new();
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => (
                name,
                port.parse::<u16>()
                    .map_err(|_| format!("'{port}' is not a port number"))?,
            ),
            _ => (host, 26379),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        sentinels.push(ConnectionAddr::Tcp(name.to_owned(), port));
    }
    if sentinels.is_empty() {
        return Err("names no Sentinel (host:port, comma-separated)".into());
    }
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let service = parts
        .next()
        .ok_or("names no service: redis+sentinel://host:26379/mymaster")?
        .to_owned();
    let db = match parts.next() {
        Some(db) => db
            .parse()
            .map_err(|_| format!("'{db}' is not a database number"))?,
        None => 0,
    };
    Ok(SentinelUrl {
        sentinels,
        service,
        db,
        username,
        password,
    })
}

/// Something made while Redis was away, to write back.
#[derive(Debug, Clone)]
enum Pending {
    Ban(Subject, u64, String),
    Unban(Subject),
}

/// This process's connection: to one server, or to a cluster (which routes each command to the
/// node owning its keys' slot).
enum Conn {
    One(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::One(c) => c,
            Conn::Cluster(c) => c.as_mut(),
        }
    }
}

#[derive(Default)]
struct Link {
    conn: Option<Conn>,
    /// The process that made `conn` (a forked child must not use its parent's socket).
    pid: u32,
    /// Replies `conn` still owes for commands sent without waiting (read before its next use).
    owed: usize,
}

/// How connections are made: straight to one server, to the primary the Sentinels name, or to
/// a cluster.
enum Backend {
    Direct(Client),
    Sentinel(Mutex<SentinelClient>),
    Cluster(ClusterClient),
}

/// The Redis [`Store`].
pub struct RedisStore {
    backend: Backend,
    prefix: String,
    fail_closed: bool,
    link: Mutex<Link>,
    local: MemoryStore,
    down: AtomicBool,
    /// Why it went down (the last outage's message), for [`Store::degraded`].
    down_reason: Mutex<String>,
    next_probe_ms: AtomicU64,
    /// The process that last used the store (to notice a fork).
    pid: AtomicU32,
    /// Numbers this store's sliding-window entries: with a random nonce and the pid, a member
    /// no other store, process or host uses.
    entries: AtomicU64,
    nonce: u64,
    /// The server's clock minus this host's, in ms, as last measured (see [`Self::learn_offset`]).
    offset_ms: AtomicI64,
    /// When (this host's ms) the offset was last measured; 0: never.
    synced_ms: AtomicU64,
    pending: Mutex<Vec<Pending>>,
    warnings: Mutex<Vec<StoreNote>>,
    /// Round trips made, and those that failed (`rampart.stats`).
    round_trips: AtomicU64,
    errors: AtomicU64,
    has_warning: AtomicBool,
    admit_script: Script,
    strike_script: Script,
    set_ban_script: Script,
    undo_script: Script,
    reset_script: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("down", &self.down)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a subject reads in a key: its IP (names are hashed subjects, shown as IPv6), in braces
/// so that a cluster keeps every key of one subject in one slot.
fn subject_key(s: Subject) -> String {
    format!("{{{}}}", s.as_ip())
}

fn algo_name(rule: &Rule) -> &'static str {
    match rule.algorithm {
        Algorithm::SlidingWindow => "log",
        Algorithm::FixedWindow => "fixed",
        Algorithm::Gcra => "gcra",
        Algorithm::SlidingWindowCounter => "counter",
    }
}

fn to_u64(x: i64) -> u64 {
    u64::try_from(x).unwrap_or(0)
}

fn to_u32(x: i64) -> u32 {
    u32::try_from(x.max(0)).unwrap_or(u32::MAX)
}

/// What one script call answered: status (0 admitted, 1 banned, 2 limited), the ban's end or the
/// refusing index, the ban's reason, and four numbers per charge.
type Reply = (i64, i64, String, Vec<i64>);

/// A listed ban: subject as stored, end, reason.
type Listed = (String, Option<u64>, Option<String>);

impl RedisStore {
    /// A store on the server `options.url` names. Connecting is lazy: an unreachable server at
    /// start-up is an outage like any other, not a failure to start.
    ///
    /// # Errors
    /// When the URL cannot be used (bad syntax, an unknown scheme).
    pub fn open(options: &RedisOptions, max_keys: usize) -> Result<RedisStore, String> {
        let bad = |e: redis::RedisError| format!("storage URI '{}': {e}", options.url);
        let url = options.url.as_str();
        if url.contains("rediss://") || url.contains("valkeys://") {
            // TLS through rustls with the ring primitives; a provider installed earlier (by the
            // application) is kept. Trusted roots: the system's, or `SSL_CERT_FILE`.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        // One small command per request: Nagle's algorithm would hold it back.
        let tcp = redis::io::tcp::TcpSettings::default().set_nodelay(true);
        let backend = if let Some(rest) = url
            .strip_prefix("redis+sentinel://")
            .or_else(|| url.strip_prefix("valkey+sentinel://"))
        {
            let s = parse_sentinel(rest).map_err(|why| format!("storage URI '{url}': {why}"))?;
            let mut builder =
                SentinelClientBuilder::new(s.sentinels, s.service, SentinelServerType::Master)
                    .map_err(bad)?
                    .set_client_to_redis_db(s.db)
                    .set_client_to_redis_tcp_settings(tcp.clone())
                    .set_client_to_sentinel_tcp_settings(tcp);
            if let Some(user) = s.username {
                builder = builder.set_client_to_redis_username(user);
            }
            if let Some(password) = s.password {
                builder = builder.set_client_to_redis_password(password);
            }
            Backend::Sentinel(Mutex::new(builder.build().map_err(bad)?))
        } else if let Some(rest) = url
            .strip_prefix("redis+cluster://")
            .or_else(|| url.strip_prefix("valkey+cluster://"))
        {
            let nodes = cluster_nodes(rest);
            if nodes.is_empty() {
                return Err(format!("storage URI '{url}': names no cluster node"));
            }
            let client = ClusterClient::builder(nodes)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(IO_TIMEOUT)
                .tcp_settings(tcp)
                .build()
                .map_err(bad)?;
            Backend::Cluster(client)
        } else {
            let info = url
                .into_connection_info()
                .map_err(bad)?
                .set_tcp_settings(tcp);
            Backend::Direct(Client::open(info).map_err(bad)?)
        };
        Ok(RedisStore {
            backend,
            prefix: options.prefix.clone(),
            fail_closed: options.fail_closed,
            link: Mutex::new(Link::default()),
            local: MemoryStore::new(max_keys),
            down: AtomicBool::new(false),
            down_reason: Mutex::new(String::new()),
            next_probe_ms: AtomicU64::new(0),
            pid: AtomicU32::new(0),
            entries: AtomicU64::new(0),
            nonce: {
                let mut seed = [0u8; 8];
                getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
                u64::from_le_bytes(seed)
            },
            offset_ms: AtomicI64::new(0),
            synced_ms: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
            round_trips: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            has_warning: AtomicBool::new(false),
            admit_script: Script::new(ADMIT),
            strike_script: Script::new(STRIKE),
            set_ban_script: Script::new(SET_BAN),
            undo_script: Script::new(UNDO),
            reset_script: Script::new(RESET),
        })
    }

    fn warn(&self, note: StoreNote) {
        lock(&self.warnings).push(note);
        self.has_warning.store(true, Ordering::SeqCst);
    }

    fn ban_key(&self, s: Subject) -> String {
        format!("{}ban:{}", self.prefix, subject_key(s))
    }

    fn bans_key(&self) -> String {
        format!("{}bans", self.prefix)
    }

    /// A limit's key. The algorithm is part of it: a rule whose algorithm changes (a new
    /// deployment, or hosts rolled out one by one) starts afresh instead of meeting state of
    /// another type.
    fn limit_key(&self, c: &Charge) -> String {
        format!(
            "{}rl:{}:{}:{}",
            self.prefix,
            subject_key(c.key.subject),
            c.key.rule,
            algo_name(&c.rule)
        )
    }

    fn strikes_key(&self, s: Subject) -> String {
        format!("{}strikes:{}", self.prefix, subject_key(s))
    }

    fn is_cluster(&self) -> bool {
        matches!(self.backend, Backend::Cluster(_))
    }

    /// Runs `f` on this process's connection; `None` while Redis is unreachable (after saying
    /// so once). Reconnects lazily, at most every [`PROBE_EVERY_MS`] while down, and writes back
    /// what was kept locally once it is back.
    fn with_conn<T>(&self, f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>) -> Option<T> {
        self.with_link(|conn, _| f(conn.like()))
    }

    /// [`Self::with_conn`] with the connection itself and the count of replies it still owes
    /// (commands sent without waiting: see [`Self::admit_plain`]), which are read first.
    fn with_link<T>(&self, f: impl FnOnce(&mut Conn, &mut usize) -> RedisResult<T>) -> Option<T> {
        let now = Clock::System.now_ms();
        let pid = std::process::id();
        if self.pid.swap(pid, Ordering::SeqCst) != pid {
            // A fresh process, or one forked from the process that made this store: what the
            // parent knew about the server's health is not this process's to act on.
            self.down.store(false, Ordering::SeqCst);
            self.next_probe_ms.store(0, Ordering::SeqCst);
        }
        if self.down.load(Ordering::SeqCst) && now < self.next_probe_ms.load(Ordering::SeqCst) {
            return None;
        }
        let mut guard = lock(&self.link);
        let link = &mut *guard;
        if link.pid != pid {
            // Inherited through fork(): the socket is the parent's.
            *link = Link {
                conn: None,
                pid,
                owed: 0,
            };
        }
        if link.conn.is_none() {
            link.owed = 0;
            match self.connect() {
                Ok(c) => link.conn = Some(c),
                Err(e) => {
                    self.went_down(&e.to_string(), now);
                    return None;
                }
            }
        }
        let conn = link.conn.as_mut()?;
        let drained = match conn {
            Conn::One(c) => (0..link.owed).try_for_each(|_| c.recv_response().map(drop)),
            Conn::Cluster(_) => Ok(()),
        };
        link.owed = 0;
        if let Err(e) = drained {
            link.conn = None;
            self.went_down(&e.to_string(), now);
            return None;
        }
        if self.down.load(Ordering::SeqCst) {
            match self.write_back(conn.like()) {
                Ok(n) => {
                    self.down.store(false, Ordering::SeqCst);
                    self.warn(StoreNote {
                        recovered: true,
                        message: format!(
                            "Redis storage is reachable again; shared limits resume ({n} bans and unbans made meanwhile written back)"
                        ),
                    });
                }
                Err(e) => {
                    link.conn = None;
                    self.went_down(&e.to_string(), now);
                    return None;
                }
            }
        }
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        match f(conn, &mut link.owed) {
            Ok(v) => Some(v),
            Err(e) => {
                link.conn = None;
                self.went_down(&e.to_string(), now);
                None
            }
        }
    }

    fn connect(&self) -> RedisResult<Conn> {
        let conn = match &self.backend {
            Backend::Direct(client) => client.get_connection_with_timeout(CONNECT_TIMEOUT)?,
            Backend::Sentinel(sentinels) => {
                // Asks the Sentinels for the current primary (after a failover, the new one).
                let client = lock(sentinels).get_client()?;
                client.get_connection_with_timeout(CONNECT_TIMEOUT)?
            }
            Backend::Cluster(client) => {
                let conn = client.get_connection()?;
                conn.set_read_timeout(Some(IO_TIMEOUT))?;
                conn.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(Conn::Cluster(Box::new(conn)));
            }
        };
        conn.set_read_timeout(Some(IO_TIMEOUT))?;
        conn.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn::One(conn))
    }

    fn went_down(&self, error: &str, now: u64) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.next_probe_ms
            .store(now + PROBE_EVERY_MS, Ordering::SeqCst);
        if !self.down.swap(true, Ordering::SeqCst) {
            let policy = if self.fail_closed {
                "answering 503 until it is back (storage_outage='block')"
            } else {
                "carrying on with this process's own counters until it is back"
            };
            let message = format!("Redis storage is unreachable ({error}); {policy}");
            lock(&self.down_reason).clone_from(&message);
            self.warn(StoreNote::degraded(message));
        }
    }

    /// Writes back the bans and unbans made while Redis was away; how many.
    fn write_back(&self, conn: &mut dyn ConnectionLike) -> RedisResult<usize> {
        let pending: Vec<Pending> = lock(&self.pending).clone();
        for p in &pending {
            self.apply(conn, p)?;
        }
        let mut kept = lock(&self.pending);
        let n = pending.len().min(kept.len());
        kept.drain(..n);
        Ok(n)
    }

    /// Writes a ban or an unban: the ban's own key, then the listing index (which may live on
    /// another node of a cluster). Returns whether an unban lifted a ban.
    fn apply(&self, conn: &mut dyn ConnectionLike, p: &Pending) -> RedisResult<bool> {
        match p {
            Pending::Ban(s, until, reason) => {
                self.set_ban_script
                    .key(self.ban_key(*s))
                    .arg(*until)
                    .arg(reason)
                    .invoke::<i64>(conn)?;
                redis::cmd("ZADD")
                    .arg(self.bans_key())
                    .arg(*until)
                    .arg(subject_key(*s))
                    .query::<()>(conn)?;
                Ok(false)
            }
            Pending::Unban(s) => {
                let lifted: i64 = redis::cmd("DEL").arg(self.ban_key(*s)).query(conn)?;
                redis::cmd("ZREM")
                    .arg(self.bans_key())
                    .arg(subject_key(*s))
                    .query::<()>(conn)?;
                Ok(lifted > 0)
            }
        }
    }

    /// Keeps a ban or unban for when Redis is back.
    fn keep(&self, p: Pending) {
        let mut pending = lock(&self.pending);
        if pending.len() < 100_000 {
            pending.push(p);
        }
    }

    /// Every key matching `pattern`, on every node: SCAN on one server (it never blocks it),
    /// KEYS on a cluster (the client sends it to every primary). For management, not requests.
    fn keys(&self, conn: &mut dyn ConnectionLike, pattern: &str) -> RedisResult<Vec<String>> {
        if self.is_cluster() {
            return redis::cmd("KEYS").arg(pattern).query(conn);
        }
        let mut out = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query(conn)?;
            out.extend(keys);
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// One admission script call over `charges` (all in one slot when on a cluster).
    fn admit_call(
        &self,
        conn: &mut dyn ConnectionLike,
        ban: Option<Subject>,
        key_of_group: Subject,
        charges: &[&Charge],
        commit: bool,
        token: &str,
    ) -> RedisResult<Reply> {
        let mut inv = self.admit_script.prepare_invoke();
        inv.key(self.ban_key(ban.unwrap_or(key_of_group)));
        inv.arg(u8::from(ban.is_some()))
            .arg(u8::from(commit))
            .arg(charges.len());
        for c in charges {
            inv.key(self.limit_key(c));
            inv.arg(algo_name(&c.rule))
                .arg(c.rule.limit)
                .arg(c.rule.window_ms)
                .arg(token);
        }
        // One server: the plain pipeline's key layout (see ADMIT). A cluster needs every key
        // declared, so it keeps one hash per limit, and every request there uses the script.
        inv.arg(u8::from(!self.is_cluster()));
        inv.invoke(conn)
    }

    /// Takes back what an admission counted for `charges` (one slot).
    fn undo_call(
        &self,
        conn: &mut dyn ConnectionLike,
        charges: &[&Charge],
        token: &str,
    ) -> RedisResult<i64> {
        let mut inv = self.undo_script.prepare_invoke();
        for c in charges {
            inv.key(self.limit_key(c));
            let step = (c.rule.window_ms.saturating_mul(1000) / u64::from(c.rule.limit.max(1)))
                .max(1)
                .to_string();
            let x = match c.rule.algorithm {
                Algorithm::SlidingWindow => token.to_owned(),
                Algorithm::Gcra => step,
                _ => String::new(),
            };
            inv.arg(algo_name(&c.rule)).arg(x);
        }
        inv.invoke(conn)
    }

    /// Admission on a cluster: one call per slot (per subject), the client's own first (with
    /// its ban). When a later one refuses, the earlier ones' counts are taken back.
    fn admit_cluster(
        &self,
        conn: &mut dyn ConnectionLike,
        ban: Option<Subject>,
        charges: &[Charge],
        token: &str,
    ) -> RedisResult<Reply> {
        let mut groups: Vec<(Subject, Vec<usize>)> = Vec::new();
        if let Some(subject) = ban {
            groups.push((subject, Vec::new()));
        }
        for (i, c) in charges.iter().enumerate() {
            match groups.iter_mut().find(|(s, _)| *s == c.key.subject) {
                Some((_, members)) => members.push(i),
                None => groups.push((c.key.subject, vec![i])),
            }
        }
        let mut quotas = vec![0i64; charges.len() * 4];
        let mut done: Vec<usize> = Vec::new();
        for (g, (subject, members)) in groups.iter().enumerate() {
            let group: Vec<&Charge> = members.iter().map(|&i| &charges[i]).collect();
            let check_ban = ban.filter(|_| g == 0);
            let (status, x, reason, q) =
                self.admit_call(conn, check_ban, *subject, &group, true, token)?;
            for (k, &i) in members.iter().enumerate() {
                if let Some(four) = q.get(k * 4..k * 4 + 4) {
                    quotas[i * 4..i * 4 + 4].copy_from_slice(four);
                }
            }
            if status == 1 {
                return Ok((status, x, reason, Vec::new()));
            }
            if status == 2 {
                for &d in &done {
                    let (_, members) = &groups[d];
                    let group: Vec<&Charge> = members.iter().map(|&i| &charges[i]).collect();
                    self.undo_call(conn, &group, token)?;
                }
                let refused = usize::try_from(x).unwrap_or(0);
                let index = members.get(refused).copied().unwrap_or(0);
                return Ok((2, i64::try_from(index).unwrap_or(0), String::new(), quotas));
            }
            if !members.is_empty() {
                done.push(g);
            }
        }
        Ok((0, 0, String::new(), quotas))
    }
}

impl RedisStore {
    /// The server's clock now (ms): this host's plus the offset last measured (see
    /// [`Self::learn_offset`]).
    fn server_ms(&self) -> u64 {
        let local = i64::try_from(now_us() / 1000).unwrap_or(i64::MAX);
        let server = local.saturating_add(self.offset_ms.load(Ordering::Relaxed));
        u64::try_from(server).unwrap_or(0)
    }

    /// Takes the server's `TIME` reply, asked for between `sent` and `got` (this host's µs),
    /// as read halfway between them. The first request of a process asks for it on its own;
    /// later, a `TIME` rides along with a request's commands every [`RESYNC_EVERY_MS`]. Limits
    /// counted without a script thus still run on the server's clock (to within a round trip),
    /// so hosts whose clocks disagree share one window. A reply that is not a time keeps the
    /// offset it had.
    fn learn_offset(&self, time: &Value, sent: u64, got: u64) {
        if let Value::Array(parts) = time {
            if let (Some(secs), Some(micros)) = (parts.first(), parts.get(1)) {
                let server = int_of(secs)
                    .saturating_mul(1_000_000)
                    .saturating_add(int_of(micros));
                let middle = i64::try_from(sent / 2 + got / 2).unwrap_or(i64::MAX);
                self.offset_ms
                    .store((server - middle) / 1000, Ordering::Relaxed);
            }
        }
        self.synced_ms.store((got / 1000).max(1), Ordering::Relaxed);
    }

    /// Measures the server's clock before anything relies on it: once per process, on its
    /// first request (later, `TIME` rides along with requests: see [`Self::admit_plain`]).
    fn ensure_offset(&self, conn: &mut dyn ConnectionLike) -> RedisResult<()> {
        if self.synced_ms.load(Ordering::Relaxed) == 0 {
            let sent = now_us();
            let time: Value = redis::cmd("TIME").query(conn)?;
            self.learn_offset(&time, sent, now_us());
        }
        Ok(())
    }

    /// Where `charges` stand, read with plain commands in one pipeline (on a cluster, one that
    /// the client splits by node), on the server's clock as [`Self::admit_plain`] reads it.
    /// Nothing is written.
    fn peek_all(&self, conn: &mut Conn, charges: &[Charge]) -> RedisResult<Vec<Quota>> {
        self.ensure_offset(conn.like())?;
        let now = self.server_ms();
        let reads = self.peek_reads(charges, now);
        let values: Vec<Value> = match conn {
            Conn::One(c) => {
                let mut p = redis::pipe();
                for cmd in reads {
                    p.add_command(cmd);
                }
                p.query(c)?
            }
            Conn::Cluster(c) => {
                let mut p = redis::cluster::cluster_pipe();
                for cmd in reads {
                    p.add_command(cmd);
                }
                p.query(c.as_mut())?
            }
        };
        Ok(self.peek_quotas(charges, now, values))
    }

    /// The reads [`Self::peek_all`] sends. A fixed or counter window is counted in plain keys
    /// on one server and in a hash on a cluster. On one server both are read and added up: a
    /// hash there is what an earlier version's script left (it counted in a hash when a GCRA
    /// limit came with the request), still live until its window ends.
    fn peek_reads(&self, charges: &[Charge], now: u64) -> Vec<redis::Cmd> {
        let plain = !self.is_cluster();
        let mut reads = Vec::with_capacity(charges.len() * 2);
        for c in charges {
            let w = c.rule.window_ms.max(1);
            let key = self.limit_key(c);
            let id = now / w;
            match c.rule.algorithm {
                Algorithm::FixedWindow => {
                    reads.push(redis::cmd("HMGET").arg(&key).arg("id").arg("n").clone());
                    if plain {
                        reads.push(redis::cmd("GET").arg(format!("{key}:{id}")).clone());
                    }
                }
                Algorithm::SlidingWindowCounter => {
                    let fields = ["id", "p", "c"];
                    reads.push(redis::cmd("HMGET").arg(&key).arg(&fields[..]).clone());
                    if plain {
                        reads.push(redis::cmd("GET").arg(format!("{key}:{id}")).clone());
                        if let Some(before) = id.checked_sub(1) {
                            reads.push(redis::cmd("GET").arg(format!("{key}:{before}")).clone());
                        }
                    }
                }
                Algorithm::Gcra => reads.push(redis::cmd("GET").arg(&key).clone()),
                Algorithm::SlidingWindow => {
                    // The live entries: scored after `now - w` (admission drops the others).
                    let after = format!("({}", now.saturating_sub(w));
                    reads.push(
                        redis::cmd("ZCOUNT")
                            .arg(&key)
                            .arg(&after)
                            .arg("+inf")
                            .clone(),
                    );
                    let mut oldest = redis::cmd("ZRANGEBYSCORE");
                    oldest.arg(&key).arg(&after).arg("+inf").arg("WITHSCORES");
                    reads.push(oldest.arg("LIMIT").arg(0).arg(1).clone());
                }
            }
        }
        reads
    }

    /// The quotas [`Self::peek_reads`]' replies add up to.
    fn peek_quotas(&self, charges: &[Charge], now: u64, values: Vec<Value>) -> Vec<Quota> {
        let plain = !self.is_cluster();
        let mut replies = values.into_iter();
        let mut next = || replies.next().unwrap_or(Value::Nil);
        // A hash's window number (when it has one) and its counts.
        let hash = |v: Value| -> (Option<u64>, Vec<u32>) {
            let Value::Array(fields) = v else {
                return (None, Vec::new());
            };
            let window = fields
                .first()
                .filter(|f| !matches!(f, Value::Nil))
                .map(|f| to_u64(int_of(f)));
            let counts = fields.iter().skip(1).map(|f| to_u32(int_of(f))).collect();
            (window, counts)
        };
        let cell = |w: [u32; 3]| Cell {
            w,
            expires_s: u32::MAX,
        };
        let mut quotas = Vec::with_capacity(charges.len());
        for c in charges {
            let rule = &c.rule;
            let id = now / rule.window_ms.max(1);
            let q = match rule.algorithm {
                Algorithm::FixedWindow => {
                    let (window, n) = hash(next());
                    let mut count = match window {
                        Some(stored) if stored >= id => n.first().copied().unwrap_or(0),
                        _ => 0,
                    };
                    if plain {
                        count = count.saturating_add(to_u32(int_of(&next())));
                    }
                    limit::fixed_window::standing(rule, cell([low32(id), count, 0]), now)
                }
                Algorithm::SlidingWindowCounter => {
                    let (window, counts) = hash(next());
                    let at = |i: usize| counts.get(i).copied().unwrap_or(0);
                    let (mut previous, mut current) = match window {
                        Some(stored) if stored >= id => (at(0), at(1)),
                        Some(stored) if stored + 1 == id => (at(1), 0),
                        _ => (0, 0),
                    };
                    if plain {
                        current = current.saturating_add(to_u32(int_of(&next())));
                        if id > 0 {
                            previous = previous.saturating_add(to_u32(int_of(&next())));
                        }
                    }
                    let state = cell([low32(id), previous, current]);
                    limit::sliding_counter::standing(rule, state, now)
                }
                Algorithm::Gcra => {
                    let mut state = cell([0; 3]);
                    state.set_u64_at(0, to_u64(int_of(&next())));
                    limit::gcra::standing(rule, state, now)
                }
                Algorithm::SlidingWindow => {
                    let count = to_u32(int_of(&next()));
                    let oldest = first_score(&next());
                    limit::sliding_log::standing(rule, count, oldest, now)
                }
            };
            quotas.push(q);
        }
        quotas
    }

    /// One admission on one server with plain commands, in one pipeline: the ban, then every
    /// limit, each counting the request first and reading the count back. When a limit refuses
    /// (or the client is banned) the counts are taken back by commands sent without waiting
    /// for their replies (read before the connection's next use), so the request still costs
    /// one round trip. A request racing with a count being taken back can be refused one too
    /// many, never admitted one too many. GCRA needs the script: see [`Self::admit`].
    fn admit_plain(
        &self,
        conn: &mut Conn,
        owed: &mut usize,
        ban: Option<Subject>,
        charges: &[Charge],
        token: &str,
    ) -> RedisResult<Reply> {
        self.ensure_offset(conn.like())?;
        let now = self.server_ms();
        let resync =
            Clock::System.now_ms() >= self.synced_ms.load(Ordering::Relaxed) + RESYNC_EVERY_MS;
        let mut p = redis::pipe();
        if resync {
            p.cmd("TIME");
        }
        if let Some(s) = ban {
            p.cmd("HMGET")
                .arg(self.ban_key(s))
                .arg("until")
                .arg("reason");
        }
        // Per limit: the key counted and when it expires (0: by its TTL).
        let mut counted: Vec<(String, u64)> = Vec::with_capacity(charges.len());
        for c in charges {
            let w = c.rule.window_ms.max(1);
            let key = self.limit_key(c);
            let id = now / w;
            match c.rule.algorithm {
                Algorithm::FixedWindow => {
                    let key = format!("{key}:{id}");
                    let end = (id + 1).saturating_mul(w);
                    p.cmd("INCR").arg(&key);
                    p.cmd("PEXPIREAT").arg(&key).arg(end).ignore();
                    counted.push((key, end));
                }
                Algorithm::SlidingWindowCounter => {
                    let current = format!("{key}:{id}");
                    let end = (id + 2).saturating_mul(w);
                    p.cmd("INCR").arg(&current);
                    p.cmd("PEXPIREAT").arg(&current).arg(end).ignore();
                    // Window 0 (a window longer than the time since the epoch) has no
                    // previous one; asking for "window -1" must not read window 0 again.
                    if let Some(before) = id.checked_sub(1) {
                        p.cmd("GET").arg(format!("{key}:{before}"));
                    }
                    counted.push((current, end));
                }
                // (GCRA goes to the script and never comes here.)
                Algorithm::SlidingWindow | Algorithm::Gcra => {
                    p.cmd("ZREMRANGEBYSCORE")
                        .arg(&key)
                        .arg("-inf")
                        .arg(now.saturating_sub(w))
                        .ignore();
                    p.cmd("ZADD").arg(&key).arg(now).arg(token).ignore();
                    p.cmd("ZCARD").arg(&key);
                    p.cmd("ZRANGE").arg(&key).arg(0).arg(0).arg("WITHSCORES");
                    p.cmd("PEXPIRE").arg(&key).arg(w).ignore();
                    counted.push((key, 0));
                }
            }
        }
        let sent = now_us();
        let values: Vec<Value> = p.query(conn.like())?;
        let mut replies = values.into_iter();
        if resync {
            if let Some(time) = replies.next() {
                self.learn_offset(&time, sent, now_us());
            }
        }
        let mut next = || replies.next().unwrap_or(Value::Nil);
        let banned = match ban {
            Some(_) => match next() {
                Value::Array(fields) => {
                    let until = fields.first().map_or(0, int_of);
                    let reason = fields.get(1).map(text_of).unwrap_or_default();
                    (to_u64(until) > now).then_some((until, reason))
                }
                _ => None,
            },
            None => None,
        };
        let mut quotas = Vec::with_capacity(charges.len() * 4);
        let (mut refused, mut wait) = (None, 0u64);
        for (i, c) in charges.iter().enumerate() {
            let rule = &c.rule;
            let id = now / rule.window_ms.max(1);
            // The counts as they were before this request.
            let q = match rule.algorithm {
                Algorithm::FixedWindow => {
                    let before = to_u32(int_of(&next()) - 1);
                    let cell = Cell {
                        w: [low32(id), before, 0],
                        expires_s: u32::MAX,
                    };
                    limit::fixed_window::check(rule, cell, now).0
                }
                Algorithm::SlidingWindowCounter => {
                    let before = to_u32(int_of(&next()) - 1);
                    let previous = if id > 0 { to_u32(int_of(&next())) } else { 0 };
                    let cell = Cell {
                        w: [low32(id), previous, before],
                        expires_s: u32::MAX,
                    };
                    limit::sliding_counter::check(rule, cell, now).0
                }
                Algorithm::SlidingWindow | Algorithm::Gcra => {
                    let before = to_u32(int_of(&next()) - 1);
                    let oldest = first_score(&next());
                    limit::sliding_log::quota(rule, before, oldest, now)
                }
            };
            if !q.allowed && (refused.is_none() || q.retry_after_ms > wait) {
                refused = Some(i);
                wait = q.retry_after_ms;
            }
            quotas.extend([
                i64::from(q.allowed),
                i64::from(q.remaining),
                i64::try_from(q.reset_ms).unwrap_or(i64::MAX),
                i64::try_from(q.retry_after_ms).unwrap_or(i64::MAX),
            ]);
        }
        if banned.is_some() || refused.is_some() {
            let mut undo = redis::pipe();
            let mut n = 0;
            for (key, end) in &counted {
                if *end == 0 {
                    undo.cmd("ZREM").arg(key).arg(token);
                    n += 1;
                } else {
                    // Counted back down; should the key have expired meanwhile, the second
                    // command removes what the first made.
                    undo.cmd("DECR").arg(key);
                    undo.cmd("PEXPIREAT").arg(key).arg(*end);
                    n += 2;
                }
            }
            if n > 0 {
                match conn {
                    Conn::One(c) => {
                        // The decision stands either way: should the socket have died since the
                        // answer, the counts stay until they expire (refusing more, never
                        // admitting more) and the next request finds out and reconnects.
                        if c.send_packed_command(&undo.get_packed_pipeline()).is_ok() {
                            *owed += n;
                        }
                    }
                    Conn::Cluster(c) => undo.query::<()>(c.as_mut())?,
                }
            }
        }
        if let Some((until, reason)) = banned {
            return Ok((1, until, reason, Vec::new()));
        }
        if let Some(i) = refused {
            return Ok((2, i64::try_from(i).unwrap_or(0), String::new(), quotas));
        }
        Ok((0, 0, String::new(), quotas))
    }
}

/// This host's clock in µs since the Unix epoch.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn low32(x: u64) -> u32 {
    (x & 0xffff_ffff) as u32
}

/// A number Redis answered (an integer, or a number as text); 0 for anything else.
fn int_of(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|t| {
                t.parse::<i64>()
                    .ok()
                    .or_else(|| t.parse::<f64>().ok().map(whole))
            })
            .unwrap_or(0),
        Value::SimpleString(t) => t.parse().unwrap_or(0),
        Value::Double(f) => whole(*f),
        _ => 0,
    }
}

/// A float's whole part (a score written as a float); Rust's cast saturates, NaN is 0.
#[allow(clippy::cast_possible_truncation)]
fn whole(f: f64) -> i64 {
    f as i64
}

fn text_of(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(t) => t.clone(),
        _ => String::new(),
    }
}

/// The score of the first member of a `ZRANGE … WITHSCORES` reply (RESP2 `[member, score]` or
/// RESP3 `[[member, score]]`).
fn first_score(v: &Value) -> Option<u64> {
    let Value::Array(items) = v else { return None };
    let score = match items.first()? {
        Value::Array(pair) => pair.get(1)?,
        _ => items.get(1)?,
    };
    u64::try_from(int_of(score)).ok()
}

/// `host:port[,host:port…]` of `redis+cluster://`, as connection URLs (credentials kept).
fn cluster_nodes(rest: &str) -> Vec<String> {
    let (auth, hosts) = match rest.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), rest),
    };
    let hosts = hosts.split('/').next().unwrap_or("");
    hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{auth}{h}"))
        .collect()
}

impl Store for RedisStore {
    fn admit(
        &self,
        now_ms: u64,
        ban: Option<Subject>,
        charges: &[Charge],
        quotas: &mut Vec<Quota>,
    ) -> Admission {
        let token = format!(
            "{:x}-{}-{}",
            self.nonce,
            std::process::id(),
            self.entries.fetch_add(1, Ordering::Relaxed)
        );
        let reply: Option<Reply> = self.with_link(|conn, owed| {
            if self.is_cluster() {
                self.admit_cluster(conn.like(), ban, charges, &token)
            } else if charges.iter().all(|c| c.rule.algorithm != Algorithm::Gcra) {
                // Plain commands cost the server less than a script (see the module docs).
                self.admit_plain(conn, owed, ban, charges, &token)
            } else {
                let all: Vec<&Charge> = charges.iter().collect();
                self.admit_call(conn.like(), ban, Subject::EVERYONE, &all, true, &token)
            }
        });
        let Some((status, x, reason, q)) = reply else {
            if self.fail_closed {
                quotas.clear();
                return Admission::Unavailable;
            }
            return self.local.admit(now_ms, ban, charges, quotas);
        };
        quotas.clear();
        for (w, c) in q.chunks_exact(4).zip(charges) {
            quotas.push(Quota {
                allowed: w[0] == 1,
                limit: c.rule.limit,
                remaining: to_u32(w[1]),
                reset_ms: to_u64(w[2]),
                retry_after_ms: to_u64(w[3]),
            });
        }
        match status {
            1 => {
                let until_ms = to_u64(x);
                if let Some(subject) = ban {
                    // Remembered here too, so the ban holds during an outage.
                    self.local.ban(subject, until_ms, &reason);
                }
                Admission::Banned(Ban { until_ms, reason })
            }
            2 => {
                for q in quotas.iter_mut().filter(|q| q.allowed) {
                    // Not counted: the quota is what it was before this request.
                    q.remaining = q.remaining.saturating_add(1).min(q.limit);
                }
                Admission::Limited {
                    index: usize::try_from(x)
                        .unwrap_or(0)
                        .min(charges.len().saturating_sub(1)),
                }
            }
            _ => {
                if let Some(subject) = ban {
                    // Not banned (any more): drop a copy kept from earlier.
                    self.local.unban(subject);
                }
                Admission::Admitted
            }
        }
    }

    fn peek(&self, now_ms: u64, charges: &[Charge], quotas: &mut Vec<Quota>) -> bool {
        if charges.is_empty() {
            quotas.clear();
            return true;
        }
        if let Some(read) = self.with_link(|conn, _| self.peek_all(conn, charges)) {
            *quotas = read;
            true
        } else {
            self.local.peek(now_ms, charges, quotas);
            false
        }
    }

    fn ban(&self, subject: Subject, until_ms: u64, reason: &str) {
        let p = Pending::Ban(subject, until_ms, reason.to_owned());
        // Kept locally as well: this process enforces it even while Redis is away.
        self.local.ban(subject, until_ms, reason);
        if self.with_conn(|conn| self.apply(conn, &p)).is_none() {
            self.keep(p);
        }
    }

    fn unban(&self, subject: Subject) -> bool {
        let local = self.local.unban(subject);
        let p = Pending::Unban(subject);
        if let Some(lifted) = self.with_conn(|conn| self.apply(conn, &p)) {
            lifted || local
        } else {
            self.keep(p);
            local
        }
    }

    fn ban_of(&self, subject: Subject, now_ms: u64) -> Option<Ban> {
        let key = self.ban_key(subject);
        let got: Option<(Option<u64>, Option<String>)> = self.with_conn(|conn| {
            redis::cmd("HMGET")
                .arg(&key)
                .arg("until")
                .arg("reason")
                .query(conn)
        });
        match got {
            Some((Some(until), reason)) if until > now_ms => Some(Ban {
                until_ms: until,
                reason: reason.unwrap_or_default(),
            }),
            Some(_) => {
                // Lifted elsewhere: forget this process's copy too.
                self.local.unban(subject);
                None
            }
            None => self.local.ban_of(subject, now_ms),
        }
    }

    fn bans(&self, now_ms: u64) -> Vec<(Subject, Ban)> {
        let index = self.bans_key();
        let listed: Option<Vec<Listed>> = self.with_conn(|conn| {
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(&index)
                .arg("-inf")
                .arg(now_ms)
                .query::<()>(conn)?;
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(&index)
                .arg(0)
                .arg(-1)
                .query(conn)?;
            let mut out = Vec::with_capacity(members.len());
            for m in members {
                let (until, reason): (Option<u64>, Option<String>) = redis::cmd("HMGET")
                    .arg(format!("{}ban:{m}", self.prefix))
                    .arg("until")
                    .arg("reason")
                    .query(conn)?;
                out.push((m, until, reason));
            }
            Ok(out)
        });
        let Some(listed) = listed else {
            return self.local.bans(now_ms);
        };
        let mut out: Vec<(Subject, Ban)> = listed
            .into_iter()
            .filter_map(|(m, until, reason)| {
                let ip: std::net::IpAddr = m.trim_matches(|c| c == '{' || c == '}').parse().ok()?;
                let until = until.filter(|u| *u > now_ms)?;
                Some((
                    Subject::ip(ip),
                    Ban {
                        until_ms: until,
                        reason: reason.unwrap_or_default(),
                    },
                ))
            })
            .collect();
        out.sort_by_key(|(s, b)| (b.until_ms, *s));
        out
    }

    fn strike(
        &self,
        now_ms: u64,
        subject: Subject,
        rule: &Rule,
        ban_for_ms: Option<u64>,
        reason: &str,
    ) -> Strike {
        let ban_until = ban_for_ms.map_or(0, |d| now_ms.saturating_add(d));
        let mut inv = self.strike_script.prepare_invoke();
        inv.key(self.strikes_key(subject))
            .key(self.ban_key(subject))
            .arg(rule.limit)
            .arg(rule.window_ms)
            .arg(ban_until)
            .arg(reason);
        let counted = self.with_conn(|conn| {
            let (count, until) = inv.invoke::<(i64, i64)>(conn)?;
            if until > 0 {
                redis::cmd("ZADD")
                    .arg(self.bans_key())
                    .arg(until)
                    .arg(subject_key(subject))
                    .query::<()>(conn)?;
            }
            Ok((count, until))
        });
        if let Some((count, until)) = counted {
            return Strike {
                count: to_u32(count),
                banned_until_ms: (until > 0).then(|| to_u64(until)),
            };
        }
        let s = self.local.strike(now_ms, subject, rule, ban_for_ms, reason);
        if let Some(until) = s.banned_until_ms {
            self.keep(Pending::Ban(subject, until, reason.to_owned()));
        }
        s
    }

    fn reset_subject(&self, subject: Subject) {
        self.local.reset_subject(subject);
        let pattern = format!("{}rl:{}:*", self.prefix, glob_escape(&subject_key(subject)));
        let anchor = self.ban_key(subject);
        self.with_conn(|conn| {
            if self.is_cluster() {
                // The subject's limits share one slot: one script on the node holding it (it
                // scans that node's keys).
                return self
                    .reset_script
                    .key(anchor)
                    .arg(pattern)
                    .invoke::<i64>(conn)
                    .map(|_| ());
            }
            for key in self.keys(conn, &pattern)? {
                redis::cmd("DEL").arg(key).query::<()>(conn)?;
            }
            Ok(())
        });
    }

    fn clear(&self) {
        self.local.clear();
        lock(&self.pending).clear();
        let pattern = format!("{}*", glob_escape(&self.prefix));
        self.with_conn(|conn| {
            for key in self.keys(conn, &pattern)? {
                redis::cmd("DEL").arg(key).query::<()>(conn)?;
            }
            Ok(())
        });
    }

    fn stats(&self) -> StoreStats {
        let pattern = format!("{}rl:*", glob_escape(&self.prefix));
        let keys = self
            .with_conn(|conn| self.keys(conn, &pattern).map(|k| k.len()))
            .unwrap_or(0);
        StoreStats {
            keys,
            bans: self.bans(Clock::System.now_ms()).len(),
            bytes: 0,
        }
    }

    fn shares_blobs(&self) -> bool {
        true
    }

    fn blob_get(&self, key: &str) -> Option<Vec<u8>> {
        let key = format!("{}{key}", self.prefix);
        self.with_conn(|conn| redis::cmd("GET").arg(&key).query::<Option<Vec<u8>>>(conn))
            .flatten()
    }

    fn blob_set(&self, key: &str, value: &[u8], ttl_ms: u64) -> bool {
        let key = format!("{}{key}", self.prefix);
        self.with_conn(|conn| {
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("PX")
                .arg(ttl_ms.max(1))
                .query::<()>(conn)
        })
        .is_some()
    }

    fn io_counts(&self) -> (u64, u64) {
        (
            self.round_trips.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    fn degraded(&self) -> Option<String> {
        self.down
            .load(Ordering::SeqCst)
            .then(|| lock(&self.down_reason).clone())
    }

    fn take_warning(&self) -> Option<StoreNote> {
        if !self.has_warning.load(Ordering::Relaxed) {
            return None;
        }
        let mut w = lock(&self.warnings);
        let out = if w.is_empty() {
            None
        } else {
            Some(w.remove(0))
        };
        self.has_warning.store(!w.is_empty(), Ordering::SeqCst);
        out
    }
}

/// `text` with Redis's glob characters escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_clock_is_read_through_the_measured_offset() {
        let options = RedisOptions {
            url: "redis://127.0.0.1:1".into(),
            prefix: "t:".into(),
            fail_closed: false,
        };
        let store = RedisStore::open(&options, 10).expect("a valid URL");
        let text = |n: u64| Value::BulkString(n.to_string().into_bytes());
        // A server an hour ahead, asked between two readings of this host's clock 2 ms apart.
        let sent = now_us();
        let server = sent + 1_000 + 3_600_000_000;
        let time = Value::Array(vec![text(server / 1_000_000), text(server % 1_000_000)]);
        store.learn_offset(&time, sent, sent + 2_000);
        let ahead = |s: &RedisStore| {
            i64::try_from(s.server_ms()).unwrap_or(0) - i64::try_from(now_us() / 1000).unwrap_or(0)
        };
        assert!((3_599_990..=3_600_010).contains(&ahead(&store)));
        // A reply that is not a time keeps the offset, and counts as measured (no retry each
        // request).
        store.learn_offset(&Value::Nil, sent, sent);
        assert!((3_599_990..=3_600_010).contains(&ahead(&store)));
        assert!(store.synced_ms.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn replies_are_read_as_numbers_and_scores() {
        let text = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        assert_eq!(int_of(&text("42")), 42);
        assert_eq!(int_of(&text("1.7637e+12")), 1_763_700_000_000);
        assert_eq!(int_of(&text("not a number")), 0);
        assert_eq!(int_of(&Value::Nil), 0);
        let resp2 = Value::Array(vec![text("m"), text("1763700000123")]);
        let resp3 = Value::Array(vec![Value::Array(vec![text("m"), Value::Double(5.0)])]);
        assert_eq!(first_score(&resp2), Some(1_763_700_000_123));
        assert_eq!(first_score(&resp3), Some(5));
        assert_eq!(first_score(&Value::Array(Vec::new())), None);
    }

    #[test]
    fn sentinel_urls_split_into_nodes_service_db_and_credentials() {
        let tcp = |h: &str, p| ConnectionAddr::Tcp(h.to_owned(), p);
        assert_eq!(
            parse_sentinel(":secret@s1:26379,s2,[::1]:26380/mymaster/2"),
            Ok(SentinelUrl {
                sentinels: vec![tcp("s1", 26379), tcp("s2", 26379), tcp("::1", 26380)],
                service: "mymaster".into(),
                db: 2,
                username: None,
                password: Some("secret".into()),
            })
        );
        let u = parse_sentinel("app:pw@h:1/svc").expect("valid");
        assert_eq!((u.username.as_deref(), u.db), (Some("app"), 0));
        for bad in ["h:1", "/svc", "h:port/svc", "h:1/svc/x"] {
            assert!(parse_sentinel(bad).is_err(), "{bad}");
        }
    }
}
