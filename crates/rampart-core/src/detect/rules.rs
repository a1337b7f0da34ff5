//! The built-in rules. Each one is a linear-time pattern (Rust `regex`: no backtracking, no
//! look-around) over the normalised value — lower case, decoded, white space squeezed, line
//! breaks kept as `\n` — unless it says it reads the raw value.
//!
//! Scores follow the CRS convention: 5 critical (one is enough to block at the default threshold),
//! 4 error, 3 warning, 2 notice. Rules that would misfire on honest text alone score below the
//! threshold and only block together with other evidence. Paranoia 1 is the default set; higher
//! levels add rules that catch more and misfire more.
//!
//! Ids: 1100s SQL injection, 1200s XSS, 1300s command injection, 1400s path traversal, 1500s file
//! inclusion, 1600s LDAP, 1700s XXE, 1800s SSRF, 1900s code injection, 2000s `NoSQL`, 2100s
//! template injection, 2200s header injection. Ids never change meaning; retired ids are not
//! reused.

use super::{Category, Kinds};

/// Critical, error, warning, notice.
pub const CRITICAL: u8 = 5;
pub const ERROR: u8 = 4;
pub const WARNING: u8 = 3;
pub const NOTICE: u8 = 2;

/// Which form of the value a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Normalized,
    Raw,
}

/// A built-in rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: u32,
    pub category: Category,
    pub paranoia: u8,
    pub score: u8,
    pub target: Target,
    /// Where the rule applies.
    pub kinds: Kinds,
    pub pattern: &'static str,
    pub description: &'static str,
}

const fn rule(
    id: u32,
    category: Category,
    score: u8,
    pattern: &'static str,
    description: &'static str,
) -> Rule {
    Rule {
        id,
        category,
        paranoia: 1,
        score,
        target: Target::Normalized,
        kinds: Kinds::ALL,
        pattern,
        description,
    }
}

const fn raw(mut r: Rule) -> Rule {
    r.target = Target::Raw;
    r
}

const fn only(mut r: Rule, kinds: Kinds) -> Rule {
    r.kinds = kinds;
    r
}

const fn paranoia(mut r: Rule, level: u8) -> Rule {
    r.paranoia = level;
    r
}

use Category::{
    Cmdi, CodeInjection, FileInclusion, HeaderInjection, Ldap, Nosql, PathTraversal, Sqli, Ssrf,
    TemplateInjection, Xss, Xxe,
};

/// Shell commands that are rarely English words: enough after a command separator.
macro_rules! strong_cmds {
    () => {
        r"(?:whoami|sysinfo|uname|wget|curl|ncat|netcat|bash|zsh|ksh|csh|tcsh|nslookup|ipconfig|ifconfig|systeminfo|tasklist|taskkill|powershell|pwsh|perl|python[23]?|php|ruby|nmap|chmod|chown|certutil|bitsadmin|wmic|netstat|telnet|xxd|base64|hostname|passwd|useradd|crontab|tftp|ls|pwd|nc|sh|cmd|ping|rm|ps|netsh|awk|gawk|sed|grep|egrep|xargs|uptime|lsof|ifup|route|arp|traceroute|tracert|getent|busybox|sudo|su|nohup|mkfifo|msiexec|rundll32|regsvr32|cscript|wscript|mshta|schtasks|icacls|cacls|attrib|findstr)"
    };
}

/// Shell commands that are also English words: they need an argument that looks like a shell's.
macro_rules! weak_cmds {
    () => {
        r"(?:id|cat|type|dir|echo|sleep|find|set|copy|del|net|kill|more|head|tail|env|export|start|ver|host|cd|mv|cp|touch|timeout|reg|sc|tac|nl|od|less|sort|call|exit|reboot|shutdown|dig|whois|curl|time|printf|read|exec|eval|source|unset|alias|file|stat|strings|which|locate|w|who|last|date|vol|tree|rmdir|mkdir|ln|tar|zip|unzip|gzip|mail|nohup)"
    };
}

/// An argument as a shell sees one: a flag, a path, a variable, a quoted string, a number.
macro_rules! shell_arg {
    () => {
        r#"(?:\s+(?:-{1,2}[a-z0-9]|/|\\|[a-z]:[\\/]|%[a-z_]+%|\$|['"]|~|\d+\s*(?:$|[;&|`)]))|\s*(?:$|[;&|`<>]|\\[nr]))"#
    };
}

/// Characters after which a shell starts a new command.
macro_rules! sep {
    () => {
        r#"(?:[;&|]|[\d'"`)]\s*\n|^\s*\n|\$\(|\|\||&&)"#
    };
}

macro_rules! sql_funcs {
    () => {
        r"(?:ascii|substr|substring|mid|length|len|ord|char|chr|hex|unhex|bin|conv|version|database|user|schema|current_user|system_user|session_user|sleep|benchmark|concat|concat_ws|group_concat|count|if|ifnull|isnull|coalesce|cast|convert|extractvalue|updatexml|load_file|md5|sha1|rand|floor|exp|pg_sleep|randomblob|db_name|user_name|host_name|@@version)"
    };
}

/// Rules that can match text made only of letters, digits, spaces and `,.;!?-` (see
/// [`super::is_prose`]). Such values, most of what honest users send, run only these; a test
/// checks that no other rule matches prose.
pub const PROSE_RULES: &[u32] = &[
    1110, 1114, 1116, 1117, 1120, 1121, 1123, 1124, 1125, 1310, 1311, 1312, 1315, 1316, 1318, 1411,
    1412, 1414, 1416, 1917, 1413, 1119, 1215, 1810, 1811, 1912, 1913, 1914, 2011, 2012, 2112, 2210,
];

/// Rules that ordinary markup matches every few bytes (every HTML tag): in the rule set, a
/// megabyte of `<a>` would make the set report a match per tag. They are matched on their own,
/// with a search that stops at the first match, on values where a `<` opens a tag name.
pub const SOLO_RULES: &[u32] = &[1216, 1218];

/// Ids of the rules that are not patterns: the SQL (1100) and HTML (1200) tokenisers, overlong
/// UTF-8 (1420), null bytes (1421). Not available to user rules.
pub const RESERVED_IDS: &[u32] = &[1100, 1200, 1420, 1421];

pub const RULES: &[Rule] = &[
    // ---------------------------------------------------------------- SQL injection
    rule(
        1110,
        Sqli,
        CRITICAL,
        r"\bunion(?:\s+(?:all|distinct))?[\s(]*select(?:\b|char|concat|null|\d)",
        "UNION SELECT",
    ),
    rule(
        1111,
        Sqli,
        CRITICAL,
        concat!(
            r#"['"`)]\s*(?:\b(?:or|and|xor|div)\b|\|\||&&)\s*\(*\s*(?:not\s+)?"#,
            r#"(?:(?:['"`]?[\w.@$]+['"`]?|['"`]{2})\s*(?:=|<>|!=|<=?|>=?|\blike\s+['"%\d]|\bis\s+(?:not\s+)?null\b|\b(?:r?like|regexp)\s+['"]|\bsounds\s+like\b|\bin\s*\(|\bbetween\s+\S+\s+and\b)|['"`]{2}\s*[-^*+|&]\s*['"`]"#,
            r#"|(?:true|false|null|\d+)\s*(?:$|--|#|;|\)|\bor\b|\band\b)"#,
            r"|",
            sql_funcs!(),
            r"\s*\(|\(*\s*select\b|exists\s*\()"
        ),
        "quote closed, then a boolean condition",
    ),
    rule(
        1112,
        Sqli,
        CRITICAL,
        r#"(?:^|[\d'"`)])\s*(?:\bor\b|\band\b|\|\||&&)\s+\(?\s*(\d+|'[^']*'|"[^"]*")\s*(?:=|<>|!=|<|>)\s*\(?\s*(?:\d+|'[^']*'|"[^"]*")"#,
        "tautology or contradiction after a value",
    ),
    rule(
        1113,
        Sqli,
        CRITICAL,
        r#"['"`]\s*\)*\s*(?:--(?:\s|$|[-+;])|#\s*$|;\s*(?:--|#|$)|\s(?:or|and)\s+[\w'"]+\s*(?:--|#)\s*$)"#,
        "quote closed, then the rest of the query commented out",
    ),
    rule(
        1114,
        Sqli,
        CRITICAL,
        concat!(
            r#"(?:;|['"`)]\s*;)\s*(?:drop\s+(?:table|database|schema|view|index|user|procedure|function)\b"#,
            r"|truncate\s+(?:table\s+)?\w|delete\s+from\b|insert\s+into\b|update\s+[\w.`]+\s+set\b|alter\s+(?:table|user|database)\b",
            r"|create\s+(?:table|user|database|function|procedure|trigger|or\s+replace)\b|exec(?:ute)?\s+(?:master\.|xp_|sp_|\(|immediate)",
            r"|declare\s+@|shutdown\b|waitfor\s+(?:delay|time)\b|select\s+[^;]{1,80}\bfrom\b|select\s+(?:@@|\*|\d|pg_|sleep|if\s*\()|grant\s+all|load\s+data|copy\s+\w+\s+(?:from|to)\s+program|set\s+@)"
        ),
        "stacked query",
    ),
    rule(
        1115,
        Sqli,
        CRITICAL,
        concat!(
            r"\b(?:sleep|pg_sleep|dbms_lock\.sleep)\s*\(\s*\(?\s*\d|\bbenchmark\s*\(\s*\d+\s*,|\bwaitfor\s+(?:delay|time)\s*'",
            r"|\bdbms_pipe\s*\.\s*receive_message\s*\(|\brandomblob\s*\(\s*\d{4,}|\bpg_sleep\b|\bsleep\s*\(\s*\d+\s*\)\s*(?:--|#|\)|,|=)"
        ),
        "time delay",
    ),
    rule(
        1116,
        Sqli,
        CRITICAL,
        concat!(
            r"\binformation_schema\b|\bsys\s*\.\s*(?:objects|tables|columns|databases|sysobjects|syscolumns|user_summary)\b|\bsqlite_(?:master|schema|version)\b",
            r"|\bpg_(?:catalog|shadow|user|database|tables|namespace|class)\b|\bmysql\s*\.\s*(?:user|db)\b|\bmsysobjects\b|\ball_(?:tables|users|tab_columns)\b|\buser_tables\b",
            r"|@@(?:version|datadir|hostname|basedir|servername|tmpdir|global)\b|\bsysobjects\b|\bsyscolumns\b|\bsysusers\b|\bdual\b\s*(?:--|#|where|\)|$)"
        ),
        "database catalogue or system variable",
    ),
    rule(
        1117,
        Sqli,
        CRITICAL,
        concat!(
            r"\b(?:extractvalue|updatexml|load_file|make_set|exp\s*\(\s*~|json_keys|geometrycollection|polygon|multipoint|name_const)\s*\(",
            r"|\binto\s+(?:out|dump)file\b|\bxp_(?:cmdshell|regread|dirtree|fileexist|servicecontrol)\b|\bsp_(?:oacreate|oamethod|executesql|makewebtask|configure|password|addsrvrolemember)\b",
            r"|\butl_(?:http|inaddr|file)\s*\.|\bdbms_(?:xmlgen|java|scheduler|export_extension)\b|\bopenrowset\s*\(|\bopendatasource\s*\(|\blo_(?:import|export)\s*\("
        ),
        "error-based extraction or database file/OS access",
    ),
    rule(
        1118,
        Sqli,
        ERROR,
        r"\b(?:group_concat|concat_ws|string_agg|listagg|xmlagg)\s*\(",
        "aggregation function used to exfiltrate",
    ),
    rule(
        1119,
        Sqli,
        CRITICAL,
        concat!(
            r"\b(?:and|or|xor|&&|\|\|)\s+\(*\s*(?:not\s+)?\(*\s*(?:",
            sql_funcs!(),
            r"|select)\s*\((?:[^)]*\)){0,6}\s*(?:=|<>|!=|<|>|\bis\b|\blike\b|\bbetween\b|\bin\b)",
            r"|\b(?:and|or)\s+\(*\s*select\b|\b(?:and|or)\s+\d+\s*(?:=|<|>)\s*\(*\s*(?:select\b|",
            sql_funcs!(),
            r"\s*\()"
        ),
        "boolean blind probe",
    ),
    rule(
        1120,
        Sqli,
        CRITICAL,
        r#"(?:^|['"`)\d])\s*\border\s+by\s+\d+\s*(?:--|#|/\*|;|,\s*\d|$)|\bgroup\s+by\s+\w+\s+having\b|\bhaving\s+\d+\s*=\s*\d+|\bprocedure\s+analyse\s*\("#,
        "column probing (ORDER BY n, HAVING)",
    ),
    rule(
        1125,
        Sqli,
        CRITICAL,
        r"^\W*select\s+(?:@@\w+|(?:current_user|session_user|system_user|current_database|current_schema)\b\s*(?:;|$|,|\bfrom\b)|(?:user|version|database|schema)\s*\(\s*\)|null\s*,|\d+\s*,\s*\d+\s*,|(?:[\d@(]|\w+\s*\()[^,]{0,40},)",
        "bare SELECT of a system function",
    ),
    rule(
        1121,
        Sqli,
        ERROR,
        r"\bchar\s*\(\s*\d+\s*(?:,\s*\d+\s*)+\)|\b(?:concat|char|chr)\s*\(\s*0x[0-9a-f]+|\b0x[0-9a-f]{8,}\b",
        "string built from character codes",
    ),
    rule(
        1122,
        Sqli,
        WARNING,
        r#"(?:^|\s)(?:'|")\s*(?:or|and)\s*(?:'|")?\s*$|^-?\d+\s*['"`)]\s*(?:or|and|union|order|group|having|limit|procedure|into)\b|^['"`]+\s*\)+\s*(?:or|and|union)\b"#,
        "value breaks out of a quoted or numeric context",
    ),
    rule(
        1123,
        Sqli,
        CRITICAL,
        r"\b(?:case\s+when|iif\s*\(|if\s*\(\s*\(?\s*(?:select|ascii|substr|length|\d+\s*[<>=]|\w+\s*=\s*\w+\s*,))[^;]{0,120}?(?:sleep|benchmark|waitfor|pg_sleep|select|0x|char\()",
        "conditional probe",
    ),
    paranoia(
        rule(
            1124,
            Sqli,
            WARNING,
            r"\bselect\b[\s\S]{1,120}?\bfrom\b[\s\S]{1,80}?\bwhere\b",
            "SELECT … FROM … WHERE",
        ),
        2,
    ),
    // ---------------------------------------------------------------- XSS
    rule(
        1210,
        Xss,
        CRITICAL,
        r"<\s*/?\s*script\b|<\s*/\s*script\s*>",
        "script element",
    ),
    rule(
        1211,
        Xss,
        CRITICAL,
        r#"<\s*[a-z!?/][^>]*?[\s/"'`;]on[a-z]{3,}\s*=|["'`]\s*[\s/]*on[a-z]{3,}\s*=\s*['"`]?\s*[\w(.$]"#,
        "event-handler attribute",
    ),
    rule(
        1212,
        Xss,
        CRITICAL,
        r"(?:j\s*a\s*v\s*a|v\s*b|l\s*i\s*v\s*e|e\s*c\s*m\s*a)\s*s\s*c\s*r\s*i\s*p\s*t\s*:|\bdata\s*:\s*(?:text/html|image/svg\+xml|application/(?:xhtml|x-javascript|javascript))|\bdata\s*:[^,;]*;\s*base64\s*,",
        "script or data URL",
    ),
    rule(
        1213,
        Xss,
        CRITICAL,
        r"<\s*/?\s*(?:iframe|frame|frameset|object|embed|applet|svg|math|base|meta|link|style|xml|import|isindex|bgsound|layer|ilayer|xss|portal|animate|set|handler|listener|template|noscript|xmp|plaintext|listing|marquee|blink)\b",
        "active-content element",
    ),
    rule(
        1214,
        Xss,
        CRITICAL,
        concat!(
            r"\b(?:srcdoc|formaction|xlink:href|onbegin|onend)\s*=|\bexpression\s*\(|-moz-binding\s*:|\bbehavior\s*:\s*url|@import\b|\burl\s*\(\s*['\x22]?\s*(?:javascript|data|vbscript):",
            r"|<\s*[a-z][^>]*\s(?:src|href|action|data|background|dynsrc|lowsrc|poster|codebase|value)\s*=\s*['\x22`]?\s*(?:javascript|vbscript|data|livescript):"
        ),
        "dangerous attribute or style",
    ),
    rule(
        1215,
        Xss,
        CRITICAL,
        concat!(
            r"\bdocument\s*\.\s*(?:cookie|domain|write(?:ln)?|location|body\s*\.\s*innerhtml)\b|\bstring\s*\.\s*fromcharcode\b|\b(?:alert|prompt|confirm)\s*(?:\(|`)[^)]{0,40}\)?",
            r"|\.\s*(?:innerhtml|outerhtml)\s*=|\bwindow\s*\[\s*['\x22`]|\btop\s*\[\s*['\x22`]|\bself\s*\[\s*['\x22`]|\bset(?:timeout|interval)\s*\(\s*['\x22`]|\blocation\s*(?:\.\s*href\s*)?=\s*['\x22`]?\s*(?:javascript|data):",
            r"|\bfetch\s*\(\s*['\x22`]https?://[^)]*\+\s*document|\bnew\s+image\s*\(\s*\)\s*\.\s*src\s*="
        ),
        "script sink or dialog call",
    ),
    rule(
        1216,
        Xss,
        ERROR,
        r"<(?:img|image|video|audio|body|input|form|button|details|textarea|keygen|select|source|html|head|table|td|div|a|p|span|b|i|u|br|h[1-6]|ul|li|font|center|sub|sup|strong|em|picture|track|area|map|option|dialog|summary|canvas|input)\b",
        "HTML element in input",
    ),
    rule(
        1217,
        Xss,
        CRITICAL,
        r"<!\[cdata\[|\+ad[wz]-|<\s*!--[\s\S]*?(?:<\s*script|-->\s*<)|<\s*\?\s*import|<\s*[a-z]+:[a-z]+[^>]*\bon[a-z]+\s*=",
        "markup obfuscation (CDATA, UTF-7, comments)",
    ),
    only(
        rule(
            1218,
            Xss,
            CRITICAL,
            r"<\s*/?\s*[a-z][a-z0-9-]*(?:\s|>|/|$)",
            "HTML in a header or a path",
        ),
        Kinds::HEADER.union(Kinds::PATH),
    ),
    rule(
        1219,
        Xss,
        ERROR,
        r"\b(?:eval|alert|prompt|confirm|atob|unescape|decodeuricomponent)\s*\([^)]{0,60}\)\s*(?:;|$|//)|\bjavascript\s*:",
        "script call",
    ),
    // ---------------------------------------------------------------- command injection
    rule(
        1310,
        Cmdi,
        CRITICAL,
        concat!(
            sep!(),
            r"\s*(?:/?[\w.-]+/)*",
            strong_cmds!(),
            r#"(?:\.exe)?(?:$|[\s;&|`)'"<>])"#
        ),
        "command after a shell separator",
    ),
    rule(
        1311,
        Cmdi,
        CRITICAL,
        concat!(
            sep!(),
            r"\s*(?:/?[\w.-]+/)*",
            weak_cmds!(),
            r"(?:\.exe)?",
            shell_arg!()
        ),
        "command with shell arguments after a separator",
    ),
    rule(
        1312,
        Cmdi,
        CRITICAL,
        concat!(
            r#"^[\s'"`)\]}]*"#,
            sep!(),
            r"+\s*(?:",
            strong_cmds!(),
            "|",
            weak_cmds!(),
            r")\b"
        ),
        "value starts a new shell command",
    ),
    rule(
        1313,
        Cmdi,
        CRITICAL,
        concat!(
            r"\$\(\s*(?:/?[\w.-]+/)*(?:",
            strong_cmds!(),
            "|",
            weak_cmds!(),
            r")\b|\$\{ifs\}|\$ifs\b|\$\{path:0:1\}|\$\{home:0:1\}",
            r#"|(?:^\s*|[;&|=('"$])`\s*(?:/?[\w.-]+/)*(?:"#,
            strong_cmds!(),
            "|",
            weak_cmds!(),
            r")\b[^`]*`"
        ),
        "command substitution",
    ),
    rule(
        1318,
        Cmdi,
        CRITICAL,
        concat!(
            sep!(),
            r#"\s*['"]?/?(?:usr/)?(?:local/)?s?bin/[a-z][\w.-]*|(?:^|[\w'")])[;&|]+\s*id\s*(?:$|\\[nr]|[;&|#])"#
        ),
        "binary run by its path after a separator",
    ),
    rule(
        1314,
        Cmdi,
        CRITICAL,
        r"\(\s*\)\s*\{\s*[^}]*;\s*\}\s*;",
        "shellshock function definition",
    ),
    rule(
        1315,
        Cmdi,
        CRITICAL,
        concat!(
            r"/dev/(?:tcp|udp)/|\bmkfifo\b|\b(?:nc|ncat|netcat)\b[^|;&]{0,60}\s-[a-z]*[ec]\b|\b(?:ba|z|k|da)?sh\s+-[ci]\b|\bperl\s+-[a-z]*e\b|\bpython[23]?\s+-c\b",
            r"|\bphp\s+-r\b|\bruby\s+-[a-z]*e\b|\bpowershell(?:\.exe)?\s+(?:-|/)|\bcmd(?:\.exe)?\s+/[ck]\b|%(?:systemroot|windir|comspec|userprofile|programfiles|temp|appdata)%",
            r"|\bnet\s+(?:user|localgroup|view|use|share|start|stop)\b|\|\s*(?:ba|z|k|da)?sh\b|\b(?:echo|printf)\b[^;|&]{0,200}>\s*[\w./\\-]+\.(?:php|jsp|aspx?|sh|py|pl)\b",
            r"|\bsocket\s*\([^)]*(?:sock_stream|af_inet|pf_inet)|\binvoke-(?:expression|webrequest)\b|\biex\s*\(|\bdownloadstring\s*\(|\bsystem\.net\.webclient\b|-enc(?:odedcommand)?\s+[a-z0-9+/=]{16,}"
        ),
        "reverse shell or interpreter one-liner",
    ),
    rule(
        1316,
        Cmdi,
        ERROR,
        r#"(?:^|[\s;&|`'"(=])/(?:usr/)?(?:local/)?s?bin/[a-z][\w.-]*|\bping\s+-[nciw]\s*\d|\b(?:wget|curl)\s+(?:-[\w-]+\s+)*['"]?(?:https?|ftp)://|>\s*/(?:tmp|dev|var)/"#,
        "binary path or download",
    ),
    rule(
        1317,
        Cmdi,
        WARNING,
        r"(?:^|[^&|])(?:\|\||&&)\s*[a-z]+\b|\|\s*[a-z]+\s+-[a-z]",
        "commands chained",
    ),
    // ---------------------------------------------------------------- path traversal
    rule(
        1410,
        PathTraversal,
        CRITICAL,
        r"(?:\.{2,}\s*[/\\]+\s*){2}|(?:^|[/\\=])\.{2,}[/\\]+[^/\\]*[/\\]+\.{2,}(?:[/\\]|$)",
        "repeated ../ traversal",
    ),
    rule(
        1411,
        PathTraversal,
        WARNING,
        r"(?:^|[/\\=\s'\x22])\.{2,}[/\\]|[/\\]\.{2,}(?:[/\\]|$)|^\.{2,}$",
        "../ traversal",
    ),
    rule(
        1412,
        PathTraversal,
        CRITICAL,
        concat!(
            r"(?:^|[/\\:.]|\b)etc[/\\]+(?:passwd|shadow|group|hosts|issue|motd|hostname|crontab|sudoers|fstab|resolv\.conf|os-release|master\.passwd|inittab|profile|bashrc|environment|[\w.-]+(?:[/\\][\w.-]+)*\.(?:conf|ini|cnf|cfg|d[/\\])|mysql[/\\]|apache2?[/\\]|httpd[/\\]|nginx[/\\]|ssh[/\\]|php[\d.]*[/\\]|security[/\\]|pam\.d|ld\.so|network|lsb-release|redhat-release|debian_version|nsswitch|init\.d|cron)",
            r"|(?:^|[/\\])proc[/\\]+[a-z\d]",
            r"|\b(?:boot|win|system)\.ini\b|[/\\]system32[/\\]|\bwin(?:dows|nt)[/\\]+(?:win\.ini|system|repair|panther|debug|temp|php\.ini|iis)|\brepair[/\\]+(?:sam|system|security|software)\b",
            r"|[/\\]inetpub[/\\]|\bweb\.config\b|\bphp\.ini\b|\bhttpd\.conf\b|\.ht(?:access|passwd)\b|[/\\]\.ssh[/\\]|\bid_(?:rsa|dsa|ecdsa|ed25519)\b|\.(?:bash|zsh|mysql|psql)_history\b",
            r"|\bwp-config\.php\b|(?:^|[/\\])\.env(?:\.\w+)?$|[/\\]\.git[/\\](?:config|head|index)|[/\\]var[/\\]+log[/\\]|[/\\]var[/\\]+(?:www|lib|mail|spool|run)[/\\]|[/\\]root[/\\]+\.",
            r"|\b[a-z]:[/\\]+(?:windows|winnt|boot\.ini|inetpub|xampp|wamp|apache|php|mysql)|[/\\]xampp[/\\]|\bphpmyadmin[/\\]|[/\\]usr[/\\]+local[/\\]+(?:apache|etc|nginx)|[/\\]opt[/\\]+lampp"
        ),
        "sensitive system file",
    ),
    rule(
        1413,
        PathTraversal,
        CRITICAL,
        r"(?:\.|%2e){2}(?:%(?:2f|5c|c0|c1|e0|25|u)|0x(?:2f|5c)|\\x|\\u|;|%00)|\.\.[\x00-\x1f\x7f]",
        "encoded traversal",
    ),
    rule(
        1414,
        PathTraversal,
        CRITICAL,
        r"(?:(?:\.|0x2e|%2e){2,}(?:0x2f|0x5c|%2f|%5c|2f|5c|(?:%\w{0,2}){1,4}|[^\w\s.]{1,8}){1,3}){2}|(?:0x2e|%2e){2}|\.\.[/\\][\w./\\-]*\.(?:php\d?|phtml|asp|aspx|jsp|ini|conf|cfg|cnf|log|sh|pl|py|cgi|inc|bak|env|config|htaccess|htpasswd|db|sqlite)\b",
        "disguised traversal, or traversal to a server file",
    ),
    raw(rule(
        1415,
        PathTraversal,
        CRITICAL,
        r"\.\.[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]",
        "traversal with a control character",
    )),
    only(
        rule(
            1416,
            PathTraversal,
            CRITICAL,
            concat!(
                r"(?:^|[\s=/\\])(?:[a-z]:)?[/\\](?:[^\s/\\]+[/\\])*(?:(?:access|error|debug|ssl_(?:access|error))[_.-]log|[\w.-]*\.(?:log|err|pdb|cnf))\b",
                r"|^/?[a-z]:[/\\]+(?:program\s?files|logs?|unattend|sysprep|boot|windows|winnt|inetpub|xampp|wamp|mysql|apache)\b|\b(?:unattend|sysprep)\.(?:txt|xml|inf)\b|\bmy\.(?:cnf|ini)\b"
            ),
            "server log or configuration file",
        ),
        Kinds::ALL.without(Kinds::PATH),
    ),
    // ---------------------------------------------------------------- file inclusion
    rule(
        1510,
        FileInclusion,
        CRITICAL,
        r"\b(?:php|zip|phar|data|expect|input|glob|compress\.zlib|compress\.bzip2|rar|ogg|ssh2(?:\.\w+)?|jar|netdoc)://|\bphp://(?:filter|input|stdin|memory|temp|fd)|\bjar:(?:https?|file|ftp):",
        "stream wrapper",
    ),
    rule(
        1511,
        FileInclusion,
        CRITICAL,
        r"\bfile:(?://|[/\\])",
        "file URL",
    ),
    rule(
        1512,
        FileInclusion,
        CRITICAL,
        r"^(?:https?|ftps?)://[^\s?#]+\?+$|^(?:https?|ftps?)://[^\s]+\.(?:txt|sh|pl|py|rb|jpg|gif|png)\?(?:[\w-]*=?[\w.-]*(?:&|$))?$|\b(?:include|require)(?:_once)?\s*\(?\s*['\x22]?(?:https?|ftps?|php|data)://",
        "remote file inclusion",
    ),
    rule(
        1513,
        FileInclusion,
        CRITICAL,
        r"(?:^|[/\\])(?:etc|proc|var|usr|windows|winnt|boot\.ini|inetpub)[/\\][^\n]*(?:\x00|%00)|[\w/\\]\.(?:php|asp|jsp|ini|conf|log|txt|xml)\s*(?:%00|\x00)",
        "file path cut with a null byte",
    ),
    // ---------------------------------------------------------------- LDAP
    rule(
        1610,
        Ldap,
        CRITICAL,
        r"\(\s*[|&!]\s*\(|\*\s*\)\s*\(|\)\s*\(\s*(?:[|&!]|(?:uid|cn|sn|mail|objectclass|objectcategory|userpassword|samaccountname|givenname|ou|dc|member|memberof|description|telephonenumber|userprincipalname)\s*[~<>]?=)",
        "filter closed and a new one opened",
    ),
    rule(
        1611,
        Ldap,
        ERROR,
        r"\(\s*(?:uid|cn|sn|mail|objectclass|objectcategory|userpassword|samaccountname|givenname|ou|dc|member|memberof)\s*[~<>]?=\s*\*|^\*\s*\)|\)\s*\)+\s*\(?\s*[|&]",
        "filter wildcard or unbalanced filter",
    ),
    // ---------------------------------------------------------------- XXE
    rule(
        1710,
        Xxe,
        CRITICAL,
        r"<!\s*entity\s+(?:%\s*)?[\w.:-]+\s+(?:system|public)\b|<!\s*doctype\s+[^>\[]*\b(?:system|public)\s+['\x22]|<\s*xi\s*:\s*include\b|\bxmlns\s*:\s*xi\s*=",
        "external entity or XInclude",
    ),
    rule(
        1711,
        Xxe,
        CRITICAL,
        r"<!\s*doctype\s+[\w:.-]+\s*\[|<!\s*entity\b|%[\w.-]+;\s*(?:%[\w.-]+;|\]\s*>)",
        "inline DTD with entities",
    ),
    rule(
        1712,
        Xxe,
        NOTICE,
        r"<!\s*element\b|<!\s*attlist\b|<\?xml\b",
        "XML declaration or DTD",
    ),
    // ---------------------------------------------------------------- SSRF
    rule(
        1810,
        Ssrf,
        CRITICAL,
        concat!(
            r"\b169\.254\.169\.254\b|\bmetadata\.google\.internal\b|\bmetadata\.azure\.com\b|\b100\.100\.100\.200\b|\bfd00:ec2::254\b|\b169\.254\.170\.2\b|\b192\.0\.0\.192\b",
            r"|/computemetadata/|/latest/(?:meta-data|user-data|api/token|dynamic)\b|/metadata/(?:instance|identity|v1)\b|\bmetadata\.(?:tencentyun|packet\.net|platformequinix)|\binstance-data\b|\bkubernetes\.default(?:\.svc)?\b|\.svc\.cluster\.local\b|\b169\.254\.169\.123\b|\balibaba\.metadata"
        ),
        "cloud metadata endpoint",
    ),
    rule(
        1811,
        Ssrf,
        CRITICAL,
        r"\b(?:gopher|dict|tftp|jar|netdoc|ldap|ldaps|sftp|smb|ftp|telnet|rmi|mysql|redis|memcache|mongodb|zookeeper)://(?:[^/@\s]*@)?(?:localhost|127\.|0\.|10\.|192\.168\.|172\.(?:1[6-9]|2\d|3[01])\.|\[|0x|\d{6,}|[^/\s:]*:\d+)",
        "non-HTTP scheme to an internal or explicit port",
    ),
    rule(
        1812,
        Ssrf,
        CRITICAL,
        concat!(
            r"\b(?:https?|gopher|dict|ftp)://(?:[^/@\s]*@)?(?:0x[0-9a-f]{2,24}|\d{8,10}|0[0-7]+(?:\.\d+){0,3}|0+(?:\.0+){0,3}|(?:\d+\.){1,2}0x[0-9a-f]+|(?:0x[0-9a-f]+\.){1,3}0?x?[0-9a-f]*",
            r"|\[(?:0*:)*:?0*(?:1|0)?\]|\[::(?:ffff:)?[0-9a-f.:]*\]|\[0*:0*:0*:0*:0*:(?:0|ffff)*:[0-9a-f.:]+\]|localtest\.me|[\w.-]+\.(?:nip|xip|sslip)\.io|lvh\.me|spoofed\.burpcollaborator\.net|127\.0\.0\.1\.[\w.-]+)(?:[:/?#\]]|$)"
        ),
        "obfuscated internal address",
    ),
    only(
        rule(
            1813,
            Ssrf,
            CRITICAL,
            r"^\s*(?:https?|ftp|gopher|dict)://(?:[^/@\s]*@)?(?:localhost|127(?:\.\d{1,3}){1,3}|0\.0\.0\.0|0|10(?:\.\d{1,3}){3}|192\.168(?:\.\d{1,3}){2}|172\.(?:1[6-9]|2\d|3[01])(?:\.\d{1,3}){2}|169\.254(?:\.\d{1,3}){2}|\[[0-9a-f:.]*\]|[\w-]+\.(?:internal|local|localdomain|corp|intranet|lan))(?:[:/?#]\S*)?\s*$",
            "parameter is a URL to an internal host",
        ),
        Kinds::ALL.without(Kinds::HEADER.union(Kinds::COOKIE)),
    ),
    rule(
        1814,
        Ssrf,
        WARNING,
        r"\b(?:https?|ftp)://(?:[^/@\s]*@)?(?:localhost|127(?:\.\d{1,3}){1,3}|0\.0\.0\.0|\[::1?\])(?:[:/?#]|$|\s)",
        "URL to the local host",
    ),
    rule(
        1815,
        Ssrf,
        CRITICAL,
        r"://[^/@\s]+@(?:localhost|127\.|0x|\d{8,}|\[|169\.254)|\burl\s*=\s*(?:https?://)?(?:localhost|127\.0\.0\.1|169\.254\.169\.254)\b",
        "credentials trick or nested URL to an internal host",
    ),
    // ---------------------------------------------------------------- code injection
    rule(
        1910,
        CodeInjection,
        CRITICAL,
        r"<\?(?:php\b|=)|<\?\s+(?:echo|system|eval|passthru)\b",
        "PHP opening tag",
    ),
    rule(
        1911,
        CodeInjection,
        CRITICAL,
        concat!(
            r"\b(?:eval|assert|system|exec|passthru|shell_exec|popen|proc_open|pcntl_exec|create_function|call_user_func(?:_array)?|preg_replace|include|require|include_once|require_once",
            r"|file_get_contents|file_put_contents|fopen|fwrite|readfile|highlight_file|show_source|phpinfo|base64_decode|gzinflate|gzuncompress|str_rot13|unserialize|array_map|usort|ob_start|mb_ereg_replace|dl|putenv)\s*\(\s*(?:['\x22`$]|\)|\w+\s*\()"
        ),
        "code-execution function with a string, variable or call",
    ),
    rule(
        1912,
        CodeInjection,
        CRITICAL,
        concat!(
            r"\b__import__\s*\(|\bos\s*\.\s*(?:system|popen|exec\w*|spawn\w*|remove|unlink|rmdir)\s*\(|\bsubprocess\s*\.\s*(?:call|run|popen|check_output|check_call|getoutput)\s*\(",
            r"|\b(?:eval|exec)\s*\(\s*(?:compile|__import__|base64|chr\s*\(|bytes|input\s*\(|open\s*\(|request|globals|getattr)|\bpickle\s*\.\s*loads?\b|\bmarshal\s*\.\s*loads\b|\bbuiltins\b\s*\.|__builtins__|\bgetattr\s*\(\s*__"
        ),
        "Python code execution",
    ),
    rule(
        1913,
        CodeInjection,
        CRITICAL,
        concat!(
            r"\brequire\s*\(\s*['\x22`]child_process|\bchild_process\b|\bprocess\s*\.\s*(?:mainmodule|binding|dlopen|kill)\b|\.\s*constructor\s*\.\s*constructor\b|\bconstructor\s*\(\s*['\x22`]return\b",
            r"|\bnew\s+function\s*\(\s*['\x22`]|__proto__|\bconstructor\s*\[\s*['\x22`]?prototype|\bprototype\s*\[|\bglobal\s*\.\s*process\b|\bprocess\s*\.\s*env\b|\bfs\s*\.\s*(?:readfile|writefile|unlink)\w*\s*\(|\bvm\s*\.\s*runin\w*\s*\("
        ),
        "JavaScript code execution or prototype pollution",
    ),
    rule(
        1914,
        CodeInjection,
        CRITICAL,
        concat!(
            r"\bruntime\s*\.\s*getruntime\s*\(|\bprocessbuilder\b|\bkernel\s*\.\s*(?:exec|system|spawn|open)\b|\bio\s*\.\s*popen\b|\bopen3\b|%x\s*[({\[]|\bsyscall\b",
            r"|\bscriptengine(?:manager)?\b|\bjava\s*\.\s*lang\s*\.\s*(?:runtime|processbuilder|system|reflect|class)|\bsystem\s*\.\s*diagnostics\s*\.\s*process\b"
        ),
        "Java, Ruby or .NET code execution",
    ),
    rule(
        1915,
        CodeInjection,
        CRITICAL,
        r"\$\{\s*@?(?:eval|system|exec|phpinfo|passthru|shell_exec|assert|print|die)\s*\(|\{\$\{|;\s*(?:die|exit)\s*\(|\$_(?:get|post|request|cookie|server|files|env)\s*\[|\bphpinfo\s*\(\s*\)",
        "PHP variable or complex-syntax code",
    ),
    rule(
        1917,
        CodeInjection,
        CRITICAL,
        r"\b(?:call_user_func(?:_array)?|shell_exec|passthru|proc_open|pcntl_exec|create_function|assert_options)\b",
        "PHP execution function named",
    ),
    rule(
        1916,
        CodeInjection,
        WARNING,
        r"\b(?:eval|exec|system|passthru|assert|execfile|compile)\s*\(",
        "code-execution function call",
    ),
    // ---------------------------------------------------------------- NoSQL
    only(
        rule(
            2010,
            Nosql,
            CRITICAL,
            r"^\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|not|nor|elemmatch|size|all|type|mod|text|function|accumulator|lookup|jsonschema|options|comment|set|unset|rename)$",
            "query operator as a key",
        ),
        Kinds::KEY,
    ),
    rule(
        2011,
        Nosql,
        CRITICAL,
        concat!(
            r"\[\s*\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|not|nor|elemmatch|size|all|type|function)\s*\]",
            r"|\{\s*['\x22]?\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|not|nor|elemmatch|function)['\x22]?\s*:",
            r"|['\x22]\s*,\s*\$(?:or|and|where|ne|gt|regex|nin)\s*:|\$where\b|\bthis\s*\.\s*\w+\s*(?:\.\s*(?:match|constructor|tostring|length)\s*[(=<>]|\s*(?:==|!=|>|<))|\bdb\s*\.\s*[\w]+\s*\.\s*(?:find\w*|insert\w*|update\w*|remove|drop|mapreduce|aggregate|count)\s*\(",
            r"|\bdb\s*\.\s*(?:getcollection\w*|dropdatabase|eval|getsiblingdb|adduser|createuser)\s*\(|['\x22]\s*;\s*(?:return|sleep|while|var|let|const|throw)\b|\|\|\s*['\x22]?\w+['\x22]?\s*===?\s*['\x22]?\w+",
            r"|['\x22]\s*&&\s*this\b|\bemit\s*\(\s*\w+\s*,\s*\w+\s*\)|\btojson\s*\(\s*this\b|\bobjectid\s*\(\s*['\x22][0-9a-f]{24}['\x22]\s*\)\s*[,}]\s*\$"
        ),
        "query operator or server-side JavaScript",
    ),
    rule(
        2012,
        Nosql,
        WARNING,
        r"\$(?:ne|gt|gte|lt|lte|regex|where|nin|exists|elemmatch)\b",
        "query operator in a value",
    ),
    // ---------------------------------------------------------------- template injection
    rule(
        2110,
        TemplateInjection,
        CRITICAL,
        concat!(
            r"\{\{\s*[\d\s]+[*+/%-]\s*[\d\s'\x22]+\}\}|\$\{\s*\d+\s*[*+/%-]\s*\d+\s*\}|#\{\s*\d+\s*[*+/%-]\s*\d+\s*\}|<%=?\s*\d+\s*[*+/%-]\s*\d+\s*%>",
            r"|\{\{\s*['\x22]\w*['\x22]\s*\*\s*\d+\s*\}\}|@\(\s*\d+\s*[*+]\s*\d+\s*\)|\{\s*\d+\s*\*\s*\d+\s*\}\}?|\[\[\s*\d+\s*\*\s*\d+\s*\]\]"
        ),
        "template arithmetic probe",
    ),
    rule(
        2111,
        TemplateInjection,
        CRITICAL,
        concat!(
            r"\{\{[^}]{0,300}?(?:__|\bconfig\b|\brequest\b|\bself\b|\bcycler\b|\bjoiner\b|\bnamespace\b|\blipsum\b|\burl_for\b|\bget_flashed_messages\b|\bgetclass\b|\bclass\b|\bconstructor\b",
            r"|\bsystem\b|\bexec\b|\bpopen\b|\beval\b|\bos\b|\bimport\b|\bforname\b|\|\s*attr\b|\[\s*['\x22]_|\brange\s*\.\s*constructor|\bprocess\b|\bglobal\b|\bmro\b|\bsubclasses\b|\bsettings\b|\bapp\b|\bfile\b|\bread\b|\bt\s*\(|['\x22]\s*\.\s*\w+\s*\()",
            r"|\{%\s*(?:import|include|extends|set|for|if|debug|load|raw|macro|call|from|print|with|autoescape)\b[^%]{0,300}%\}"
        ),
        "Jinja/Twig/Handlebars expression reaching objects",
    ),
    rule(
        2112,
        TemplateInjection,
        CRITICAL,
        concat!(
            r"\$\{[^}]{0,300}?(?:getclass|forname|runtime|exec\s*\(|\.os\.|system\s*\(|processbuilder|getruntime|\bt\s*\(|class\.|\bnew\s|@|\.module\b|self\.|\.cache\.|\.template\b|\.inspect\b|\bimport\b|\bjava\.|\bproduct\.|freemarker|\?new|\bobject\b|\.class\b|\bsession\b|\brequest\b|\bapplication\b|\benv\b|\bscriptengine)",
            r"|\bt\s*\(\s*java\.|\bforname\s*\(|\.\s*getclass\s*\(\s*\)|\bfreemarker\s*\.\s*template|<#(?:assign|include|import|list|if|setting|attempt)\b|\[#(?:assign|include|import|list)\b|\?new\s*\(\s*\)|\?api\b",
            r"|__\$\{|\$\{\s*self\b|#\{[^}]{0,200}(?:system|exec|`|%x|runtime|io\.popen|kernel|getclass|forname|t\s*\()|\*\{[^}]{0,200}t\s*\(|#set\s*\(\s*\$|#foreach\s*\(|\$\w+\.getclass\(|\{php\}|\{/php\}|\{\s*system\s*\(|\{\s*\$smarty\b|\{\s*if\s+(?:system|phpinfo|exec)",
            r"|\$\{[^}]{0,200}?(?:['\x22]\s*\.\s*\w+\s*\(|\.\s*(?:execute|evaluate|exec|getclass|forname|getruntime|newinstance|invoke|getmethod|getdeclared\w*|loadclass|waitfor|readline|popen\w*|system|eval|getenv|getproperty|inputstream)\s*\()|\$\{\s*jndi\s*:|\$\{[^}]{0,60}(?:\$\{|::-)[^}]{0,60}j|<%[^%]{0,200}\b(?:require|system|exec|popen\d?|open\d|eval|`|%x|io\s*\.|file\s*\.|kernel|runtime|process)\b"
        ),
        "Java, Mako, FreeMarker, Velocity or Smarty expression reaching objects",
    ),
    rule(
        2113,
        TemplateInjection,
        WARNING,
        r"<%[=@!-]?[^%]{0,300}%>|\{\{[^}]{0,200}\|\s*(?:attr|filter|map|reject|sort\s*\(|first\s*\()\b|\{\{=",
        "template expression",
    ),
    rule(
        2114,
        TemplateInjection,
        NOTICE,
        r"\{\{[^}]{1,200}\}\}|\{%[^%]{1,200}%\}|\$\{[^}]{1,200}\}",
        "template tag",
    ),
    // ---------------------------------------------------------------- header injection
    rule(
        2210,
        HeaderInjection,
        CRITICAL,
        r"\n\s*(?:set-cookie|content-(?:type|length|disposition|security-policy)|transfer-encoding|x-xss-protection|access-control-allow-[\w-]+|cache-control|x-forwarded-[\w-]+|x-[\w-]+|host|link|http/\d(?:\.\d)?\s+\d{3})\s*:|\n\s*location\s*:\s*(?:[a-z]+:|/)|\n\s*refresh\s*:\s*\d|\n[^\n]{0,3}set-cookie\s*:|\n\s*http/\d|@[\w.-]+\.[a-z]{2,}\s*\n\s*(?:bcc|cc|to|from|reply-to|subject)\s*:",
        "line break followed by a header",
    ),
    raw(rule(
        2211,
        HeaderInjection,
        CRITICAL,
        r"(?i)(?:%0d|%0a|\\r|\\n|%e5%98%8a|%e5%98%8d|%u000a|%u000d|\xe5\x98\x8a|\xe5\x98\x8d|\r|\n)+\s*(?:set-cookie|location|content-type|content-length|x-[\w-]+|refresh|http/1|bcc|cc|reply-to)\s*:",
        "encoded line break followed by a header",
    )),
];
