# psql_restore.sh's checks and builders, in jq: the script runs where only psql, jq and coreutils are, without
# Python or this package. Used as a module (jq -L deploy 'include "psql_restore"; ...'):
#
#   acceptable($timestamp)                        whether a manifest holds only file names, names, checksums,
#                                                 codecs and set formats the tool writes
#   restore_script($create; $reader)              psql's input for the restore, built from checked parts alone
#   target_types_script                           psql's input that prints the target's column types (binary sets)
#   same_types($target)                           refuses a binary set whose column types are not the target's
#   connection_settings, connection_exports       $PGVECTOR_DSN read as libpq reads it, as PG* variables
#
# A refusal is a message on stderr and exit status 1. The manifest is untrusted: no text of it reaches psql as SQL or
# a shell as a command, only names that are plain identifiers (double-quoted), and types, index methods, options and
# referential actions that are checked against the lists below.

def refuse($message): "\($message)\n" | halt_error(1);

# --- Names

# A table or column name as the tool accepts one: pgvector_pipeline.names.COLUMN_NAME_PATTERN (a test keeps the two
# equal, as it does index_methods, file_suffix and file_extension).
def plain_name_pattern: "[A-Za-z_][A-Za-z0-9_]{0,62}";
def plain_name: type == "string" and test("\\A\(plain_name_pattern)\\z");
def quoted: "\"" + . + "\"";
# A plain name as PostgreSQL's quote_ident prints it in pg_get_constraintdef and pg_get_indexdef: bare when lower
# case, else double-quoted.
def printed_name: "(?:[a-z_][a-z0-9_]{0,62}|\"\(plain_name_pattern)\")";
def unprinted: ltrimstr("\"") | rtrimstr("\"");

# --- The manifest's files (the tool's one home of codecs and file names: pgvector_pipeline.store.codecs, .layout)

def file_suffix: {"zstd": ".zst", "gzip": ".gz", "none": ""}[.];
def codec: .codec // "none";
def file_sha256: .stored_sha256 // .sha256;
# How a set holds the rows (pgvector_pipeline.set_formats): CSV with a header row, or PostgreSQL's binary COPY stream
# (manifest format 4 and later); and the extension of its files before the codec's suffix (FILE_EXTENSION there).
def set_format: .set_format // "csv";
def file_extension: {"csv": "csv", "binary": "pgcopy"}[.];
def binary: set_format == "binary";

def acceptable($timestamp):
  try (
  (set_format | file_extension) as $extension
  | binary as $binary
  | ($timestamp | test("\\A[0-9]{8}_[0-9]{6}\\z"))
  and (set_format | IN("csv", "binary"))
  and (.tables | type == "object" and length > 0)
  and (if .encryption then ".age" else "" end) as $age  # an encrypted set's files (psql_restore.sh --identity)
  | all(.tables | to_entries[];
    (.key | plain_name)
    and (.value | codec | IN("zstd", "gzip", "none"))
    and .value.file == "\(.key)_\($timestamp).\($extension)\(.value | codec | file_suffix)\($age)"
    and (.value | file_sha256 | type == "string" and test("\\A[0-9a-f]{64}\\z"))
    and (.value.columns | type == "array" and length > 0 and all(.[]; .name | plain_name))
    # A binary set's fields are of the types it records: compared with the target's (same_types), never run.
    and (($binary | not) or all(.value.columns[]; .type | type == "string" and length > 0 and length <= 200))
    and (.value.create_table // "" | type == "string")
    and (.value.indexes // [] | type == "array" and all(.[]; type == "string")))
  ) catch false;  # a field of another type (an array for an object, ...)

# --- Tables and indexes, rebuilt from names and types (--create)

def cannot_rebuild($table; $reason):
  refuse(
    "psql_restore.sh --create cannot rebuild table \($table): \($reason). It builds tables and indexes from the "
    + "manifest's names and types alone and runs no SQL text of a manifest: create the tables yourself, from a schema "
    + "you trust (the manifest may have been changed), and run it without --create, or restore with the tool "
    + "(pgvector-pipeline --direct restore), which checks such definitions with PostgreSQL's parser."
  );

def column_types_text:
  "uuid, text, json, jsonb, boolean, smallint, integer, bigint, real, double precision, numeric, bytea, date, "
  + "time and timestamp (with or without time zone), tsvector, character varying, character, bit, vector, halfvec "
  + "or sparsevec, with their modifiers, or an array of one";

# A column's type as format_type spells it (the manifest's column records) -> the type as it is created, or null
# when it is none of column_types_text. pgvector's types may be schema-qualified (the extension's schema in the
# source); they are created unqualified, as the types CREATE EXTENSION vector has just made.
def column_type:
  first(
    capture("\\A(?:[a-z_][a-z0-9_]*\\.)?(?<base>vector|halfvec|sparsevec)(?<modifier>\\([0-9]{1,5}\\))?(?<array>\\[\\])?\\z"),
    capture("\\A(?<base>character varying|character|bit varying|bit)(?<modifier>\\([0-9]{1,5}\\))?(?<array>\\[\\])?\\z"),
    capture("\\A(?<base>numeric)(?<modifier>\\([0-9]{1,4}(?:,-?[0-9]{1,4})?\\))?(?<array>\\[\\])?\\z"),
    capture("\\A(?<base>timestamp|time)(?<modifier>\\([0-6]\\))?(?<zone> with time zone| without time zone)(?<array>\\[\\])?\\z"),
    capture("\\A(?<base>uuid|text|json|jsonb|boolean|smallint|integer|bigint|real|double precision|bytea|date|tsvector)(?<array>\\[\\])?\\z"),
    null
  )
  | if . == null then null else .base + (.modifier // "") + (.zone // "") + (.array // "") end;

# An integer column whose default draws from its own sequence is created as serial, which makes that sequence.
def serial_type: {"smallint": "smallserial", "integer": "serial", "bigint": "bigserial"}[.];

# A CREATE TABLE as the tool writes it (pgvector_pipeline.postgres.catalog.describe_table) -> its definitions: one a
# line, indented by four spaces, commas after all but the last, between `CREATE TABLE "t" (` and `)`.
def definitions($table):
  split("\n") as $lines
  | if ($lines | length) < 3
      or $lines[0] != "CREATE TABLE \($table | quoted) ("
      or $lines[-1] != ")"
      or any($lines[1:-2][]; test("\\A    \\S.*,\\z") | not)
      or ($lines[-2] | test("\\A    \\S.*[^,]\\z") | not)
    then cannot_rebuild($table; "its CREATE TABLE is not laid out as the tool writes it")
    else $lines[1:-1] | map(ltrimstr("    ") | rtrimstr(","))
    end;

# A column definition -> {name, sql}: the column rebuilt from its record in the manifest's column list, when the
# definition is exactly `"name" type[ NOT NULL]`, or the serial form of it.
def rebuilt_column($table; $records):
  . as $definition
  | (capture("\\A\"(?<name>\(plain_name_pattern))\" ") // cannot_rebuild($table; "a column definition is not one the tool writes"))
  | .name as $name
  | ($name | tojson) as $shown
  | (first($records[] | select(.name == $name)) // null) as $record
  | if $record != null then .
    elif $definition | test(" GENERATED ALWAYS AS ") then
      cannot_rebuild($table; "column \($shown) is a generated column (its expression would be SQL text of the manifest)")
    else cannot_rebuild($table; "column \($shown) is not in the manifest's column list")
    end
  | ($record.type | if type == "string" then column_type else null end) as $type
  | if $type != null then . else
      cannot_rebuild($table; "column \($shown) has type \($record.type | tostring | .[0:100] | tojson), not one of the types it creates (\(column_types_text))")
    end
  | (if $record.not_null == true then " NOT NULL" else "" end) as $not_null
  | "\($name | quoted) \($record.type)" as $plain
  | if $definition == $plain + $not_null then {name: $name, sql: "\($name | quoted) \($type)\($not_null)"}
    elif ($record.type | serial_type) != null
      and $definition == "\($plain) DEFAULT nextval('\($table)_\($name)_seq'::regclass)\($not_null)"
      then {name: $name, sql: "\($name | quoted) \($record.type | serial_type)\($not_null)"}
    elif $definition | test(" DEFAULT ") then
      cannot_rebuild($table; "column \($shown) has a default other than its own sequence")
    else cannot_rebuild($table; "column \($shown) is defined otherwise than the manifest's column list says")
    end;

# A list of columns as pg_get_constraintdef and pg_get_indexdef print it -> the names, each one of $columns.
def column_names($table; $columns; $what):
  split(", ")
  | map(
      if test("\\A\(printed_name)\\z") then unprinted
      else cannot_rebuild($table; "\($what) names something other than plain columns")
      end
      | if IN($columns[]) then . else cannot_rebuild($table; "\($what) names a column its table does not have") end
    );
def column_list($table; $columns; $what): column_names($table; $columns; $what) | map(quoted) | join(", ");

def referential_actions: {"CASCADE": "CASCADE", "RESTRICT": "RESTRICT", "SET NULL": "SET NULL", "SET DEFAULT": "SET DEFAULT"};

# A constraint definition -> the constraint rebuilt: a primary key, unique key or foreign key of plain columns. A
# foreign key may reference the tables of $known ({table: [columns]}): those created before this one, and itself.
def rebuilt_constraint($table; $columns; $known):
  (capture("\\ACONSTRAINT \"(?<name>\(plain_name_pattern))\" (?<body>.*)\\z")
    // cannot_rebuild($table; "a constraint definition is not one the tool writes"))
  | .name as $name
  | "constraint \($name | tojson)" as $what
  | "CONSTRAINT \($name | quoted) " + (.body | first(
      (capture("\\APRIMARY KEY \\((?<columns>[^()]*)\\)\\z")
        | "PRIMARY KEY (\(.columns | column_list($table; $columns; $what)))"),
      (capture("\\AUNIQUE \\((?<columns>[^()]*)\\)\\z")
        | "UNIQUE (\(.columns | column_list($table; $columns; $what)))"),
      (capture("\\AFOREIGN KEY \\((?<columns>[^()]*)\\) REFERENCES (?<target>\(printed_name))\\((?<target_columns>[^()]*)\\)"
          + "(?: ON UPDATE (?<update>CASCADE|RESTRICT|SET NULL|SET DEFAULT))?"
          + "(?: ON DELETE (?<delete>CASCADE|RESTRICT|SET NULL|SET DEFAULT))?\\z")
        | (.target | unprinted) as $target
        | if $known | has($target) then . else
            cannot_rebuild($table; "\($what) references a table the set does not create before it")
          end
        | "FOREIGN KEY (\(.columns | column_list($table; $columns; $what))) REFERENCES \($target | quoted) "
          + "(\(.target_columns | column_list($table; $known[$target]; $what)))"
          + (if .update then " ON UPDATE \(referential_actions[.update])" else "" end)
          + (if .delete then " ON DELETE \(referential_actions[.delete])" else "" end)),
      cannot_rebuild($table; "\($what) is not a primary key, unique key or foreign key of plain columns")
    ));

# One table of the manifest ({key, value}) -> its CREATE TABLE, built from its column records and the keys of its
# CREATE TABLE; refused (cannot_rebuild) when that CREATE TABLE has anything else.
def create_table($known):
  .key as $table
  | .value as $entry
  | if $entry.create_table != null then . else
      cannot_rebuild($table; "the manifest records no CREATE TABLE (a set adopted from the old backup system)")
    end
  | ($entry.create_table | definitions($table)) as $definitions
  | ($entry.columns | map(.name)) as $names
  | [$definitions[] | select(startswith("\"")) | rebuilt_column($table; $entry.columns)] as $columns
  | ($names - ($columns | map(.name))) as $undefined
  | if $undefined == [] then . else
      cannot_rebuild($table; "its CREATE TABLE does not define column \($undefined[0] | tojson) of the manifest's column list")
    end
  | if ($columns | map(.name)) == $names then . else
      cannot_rebuild($table; "its CREATE TABLE lists the columns in another order than the manifest's column list")
    end
  | [$definitions[] | select(startswith("\"") | not) | rebuilt_constraint($table; $names; $known)] as $constraints
  | "CREATE TABLE \($table | quoted) (\n    \(($columns | map(.sql)) + $constraints | join(",\n    "))\n);";

# The index methods of PostgreSQL and pgvector: pgvector_pipeline.postgres.ddl.INDEX_METHODS.
def index_methods: ["btree", "hash", "gin", "gist", "spgist", "brin", "hnsw", "ivfflat"];
def null_orders: {" NULLS FIRST": " NULLS FIRST", " NULLS LAST": " NULLS LAST"};

# A CREATE INDEX as pg_get_indexdef prints it -> the index rebuilt: plain columns, each with an operator class, order
# and nulls order if given, and storage options of plain values. Expressions, predicates, INCLUDE and collations are
# refused.
def rebuilt_index($table; $columns):
  . as $statement
  | (capture("\\ACREATE (?:UNIQUE )?INDEX (?<name>\(printed_name)) ON (?<table>\\S+) ")
      // cannot_rebuild($table; "an index definition is not one the tool writes"))
  | (.name | unprinted) as $name
  | "index \($name | tojson)" as $what
  | if (.table | unprinted) == $table then . else cannot_rebuild($table; "\($what) is on another table") end
  | ($statement | capture(
        "\\ACREATE (?<unique>UNIQUE )?INDEX \(printed_name) ON \\S+ USING (?<method>[a-z]+) \\((?<keys>[^()]*)\\)"
        + "(?: WITH \\((?<options>[^()]*)\\))?\\z")
      // cannot_rebuild($table; "\($what) is not an index of plain columns (an expression, a predicate, INCLUDE or a collation)"))
  | if IN(.method; index_methods[]) then . else
      cannot_rebuild($table; "\($what) uses the index method \(.method | tojson), not one of \(index_methods | join(", "))")
    end
  | "CREATE \(if .unique then "UNIQUE " else "" end)INDEX \($name | quoted) ON \($table | quoted) USING \(.method) ("
    + (.keys | split(", ") | map(
        (capture("\\A(?<column>\(printed_name))(?: (?:[a-z_][a-z0-9_]*\\.)?(?<class>[a-z_][a-z0-9_]{0,62}))?(?<descending> DESC)?(?<nulls> NULLS FIRST| NULLS LAST)?\\z")
          // cannot_rebuild($table; "\($what) is not an index of plain columns (an expression, a predicate, INCLUDE or a collation)"))
        | (.column | column_names($table; $columns; $what)[0] | quoted)
          + (if .class then " " + (.class | quoted) else "" end)
          + (if .descending then " DESC" else "" end)
          + (if .nulls then null_orders[.nulls] else "" end)
      ) | join(", "))
    + ")"
    + (if .options == null then "" else
        " WITH (" + (.options | split(", ") | map(
          (capture("\\A(?<key>[a-z_][a-z0-9_]{0,62})=(?:'(?<quoted>[A-Za-z0-9_.]{1,64})'|(?<bare>[a-z_][a-z0-9_]{0,62}))\\z")
            // cannot_rebuild($table; "\($what) has a storage option that is not a plain value"))
          | "\(.key | quoted)='\(.quoted // .bare)'"
        ) | join(", ")) + ")"
      end)
    + ";";

def create_statements:
  . as $entries
  | range(0; length) as $i
  | ($entries[0:$i + 1] | map({(.key): (.value.columns | map(.name))}) | add) as $known
  | $entries[$i]
  | create_table($known);

def index_statements:
  .[]
  | .key as $table
  | (.value.columns | map(.name)) as $columns
  | (.value.indexes // [])[]
  | rebuilt_index($table; $columns);

# --- The restore

# A CSV's header must match the manifest's columns (HEADER MATCH); a binary stream has no header: its fields load into
# the manifest's columns, in that order, and COPY refuses a tuple with another number of fields.
def copy_command($reader; $binary):
  "\\copy \(.key | quoted) (\(.value.columns | map(.name | quoted) | join(", "))) FROM PROGRAM "
  + "'sh \($reader) \(.value.file) \(.value | file_sha256) \(.value | codec)' "
  + (if $binary then "WITH (FORMAT binary)" else "WITH (FORMAT csv, HEADER MATCH)" end);

# psql's input: one transaction that stops at the first error. Built whole before psql starts (a refusal halfway
# leaves nothing to run).
def restore_script($create; $reader):
  binary as $binary
  | (.tables | to_entries) as $entries
  | "\\set ON_ERROR_STOP on",
    "BEGIN;",
    (if $create then "CREATE EXTENSION IF NOT EXISTS vector;", ($entries | create_statements)
     else "TRUNCATE \($entries | map(.key | quoted) | join(", "));"
     end),
    ($entries[] | copy_command($reader; $binary)),
    (if $create then $entries | index_statements else empty end),
    "COMMIT;";

# --- A binary set and the target's column types
#
# A binary COPY field is the binary form of the set's type: PostgreSQL reads it with the receive function of the
# target column's type, so it loads only into columns of the same types (json into jsonb fails, uuid into text would
# load wrong text). The type modifier may differ (vector(1536) into vector): the server checks each value against the
# target's modifier as it loads, as it does for a CSV. psql prints the target's types (format_type, under an empty
# search_path: qualified outside pg_catalog) as JSON, and they are compared here: no type of the manifest reaches psql.

# psql's input (run with -X -q -A -t) that prints {"extension_schema": the vector extension's schema (quoted as in
# format_type) or null, "tables": {table: {column: type} or null when it does not exist}} for the set's tables, each
# found as the restore's \copy finds it (the session's search_path).
def target_types_script:
  (.tables | keys_unsorted | map("'\(.)'") | join(", ")) as $names
  | "\\set ON_ERROR_STOP on",
    ("SELECT pg_catalog.json_object_agg(u.name, pg_catalog.to_regclass(pg_catalog.quote_ident(u.name))::pg_catalog.oid) "
      + "AS relations FROM pg_catalog.unnest(ARRAY[\($names)]::pg_catalog.text[]) AS u(name) \\gset"),
    "SELECT pg_catalog.set_config('search_path', '', false) \\gset",
    ("SELECT pg_catalog.json_build_object("
      + "'extension_schema', (SELECT pg_catalog.quote_ident(n.nspname) FROM pg_catalog.pg_extension e "
      + "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace "
      + "WHERE e.extname OPERATOR(pg_catalog.=) 'vector'), "
      + "'tables', (SELECT pg_catalog.json_object_agg(r.key, (SELECT pg_catalog.json_object_agg(a.attname, "
      + "pg_catalog.format_type(a.atttypid, a.atttypmod)) FROM pg_catalog.pg_attribute a "
      + "WHERE a.attrelid OPERATOR(pg_catalog.=) r.value::pg_catalog.oid AND a.attnum OPERATOR(pg_catalog.>) 0 "
      + "AND NOT a.attisdropped)) FROM pg_catalog.json_each_text(:'relations'::pg_catalog.json) AS r))");

# A type as format_type prints it -> without its modifier: vector(1536) -> vector, timestamp(3) with time zone ->
# timestamp with time zone, character varying(40)[] -> character varying[].
def without_modifier: sub("\\([0-9]+(?:,-?[0-9]+)?\\)(?=(?: with(?:out)? time zone)?(?:\\[\\])*\\z)"; "");

# The manifest's binary set and $target (target_types_script's output) -> true, or a refusal naming every column of a
# table the target has whose type is another than the set's. A table or column the target lacks is left to the
# restore's \copy, which fails on it (and nothing changes).
def same_types($target):
  (if $target.extension_schema == null then null else $target.extension_schema + "." end) as $pgvector
  | [ .tables | to_entries[]
      | .key as $table
      | ($target.tables[$table] // {}) as $columns
      | .value.columns[]
      | select(.name as $name | $columns | has($name))
      | {table: $table, column: .name, set: .type, target: $columns[.name]}
      # pgvector's types are recorded relative to its schema (unqualified), as the target's are compared here.
      | select(
          (.set | without_modifier)
          != (.target | if $pgvector != null and startswith($pgvector) then ltrimstr($pgvector) else . end
              | without_modifier)
        ) ]
  | if . == [] then true else
      refuse(
        "psql_restore.sh cannot load this binary set: "
        + (map("column \(.table).\(.column) is \(.set | tojson) in the set but \(.target | tojson) in the target database")
          | join("; "))
        + ". A binary set loads only into columns of the types it records (a type modifier such as vector(1536) may "
        + "differ). Nothing was changed. Restore it with pgvector-pipeline --direct restore, which casts through a "
        + "staging table, or change the column to the set's type."
      )
    end;

# --- The connection: $PGVECTOR_DSN, read as libpq reads it, handed to psql as PG* variables: never on a command
# line, which every local user can read in /proc/PID/cmdline.

# libpq's connection keywords and the variables every libpq since PostgreSQL 15 reads them from.
def connection_variables: {
  "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
  "password": "PGPASSWORD", "passfile": "PGPASSFILE", "channel_binding": "PGCHANNELBINDING", "service": "PGSERVICE",
  "options": "PGOPTIONS", "application_name": "PGAPPNAME", "sslmode": "PGSSLMODE",
  "sslcompression": "PGSSLCOMPRESSION", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "sslrootcert": "PGSSLROOTCERT",
  "sslcrl": "PGSSLCRL", "sslcrldir": "PGSSLCRLDIR", "sslsni": "PGSSLSNI", "requirepeer": "PGREQUIREPEER",
  "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION", "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
  "gssencmode": "PGGSSENCMODE", "krbsrvname": "PGKRBSRVNAME", "gsslib": "PGGSSLIB",
  "connect_timeout": "PGCONNECT_TIMEOUT", "client_encoding": "PGCLIENTENCODING",
  "target_session_attrs": "PGTARGETSESSIONATTRS"
};
# libpq's keywords without such a variable (or with one that an older libpq would silently ignore: require_auth,
# sslcertmode, ...), named when refused. Any other keyword is refused without being shown: it may be a password
# typed in the wrong place.
def keywords_without_variable: [
  "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
  "fallback_application_name", "replication", "sslpassword", "sslcertmode", "sslnegotiation", "sslkeylogfile",
  "require_auth", "gssdelegation", "load_balance_hosts", "min_protocol_version", "max_protocol_version",
  "scram_client_key", "scram_server_key", "oauth_issuer", "oauth_client_id", "oauth_client_secret", "oauth_scope"
];

def unreadable_dsn($why):
  refuse("PGVECTOR_DSN cannot be read as a connection string: \($why); its text is not shown, as it may hold a password.");

def hex_value: explode | map(if . >= 97 then . - 87 elif . >= 65 then . - 55 else . - 48 end) | .[0] * 16 + .[1];

# UTF-8 bytes -> the string they encode, or null when they are not UTF-8.
def utf8_string:
  reduce .[] as $byte ({codes: [], need: 0, code: 0, least: 0, bad: false};
    if .bad then .
    elif .need == 0 then
      if $byte < 128 then .codes += [$byte]
      elif $byte >= 194 and $byte < 224 then .need = 1 | .code = $byte - 192 | .least = 128
      elif $byte >= 224 and $byte < 240 then .need = 2 | .code = $byte - 224 | .least = 2048
      elif $byte >= 240 and $byte < 245 then .need = 3 | .code = $byte - 240 | .least = 65536
      else .bad = true
      end
    elif $byte >= 128 and $byte < 192 then
      .code = .code * 64 + $byte - 128
      | .need -= 1
      | if .need > 0 then .
        elif .code < .least or .code > 1114111 or (.code >= 55296 and .code < 57344) then .bad = true
        else .codes += [.code]
        end
    else .bad = true
    end)
  | if .bad or .need != 0 then null else .codes | implode end;

# URI percent-decoding as libpq's: %XX is a byte (the bytes are UTF-8), nothing else is decoded ('+' is a '+').
def percent_decoded:
  if test("%(?![0-9A-Fa-f]{2})") then unreadable_dsn("a % is not followed by two hexadecimal digits") else . end
  | gsub("(?<bytes>(?:%[0-9A-Fa-f]{2})+)";
      .bytes
      | [scan("[0-9A-Fa-f]{2}") | hex_value]
      | if any(.[]; . == 0) then unreadable_dsn("a percent-encoded byte is NUL (%00)")
        else utf8_string // unreadable_dsn("its percent-encoded bytes are not UTF-8")
        end);

# A postgresql:// URI -> [[keyword, value]] in libpq's order (later ones win), as libpq's conninfo_uri_parse does:
# user[:password]@ up to the first @ before a /, hosts with ports, /dbname, ?keyword=value&...
def uri_pairs:
  (capture("\\Apostgres(?:ql)?://(?:(?<userinfo>[^@/]*)@)?(?<netloc>[^/?]*)(?:/(?<dbname>[^?]*))?(?:\\?(?<query>[\\s\\S]*))?\\z")
    // unreadable_dsn("it is not a postgresql:// URI libpq reads"))
  | (.userinfo // "" | capture("\\A(?<user>[^:]*)(?::(?<password>[\\s\\S]*))?\\z")) as $credentials
  | (.netloc | split(",") | map(
      capture("\\A(?:\\[(?<address>[^\\]]+)\\]|(?!\\[)(?<name>[^:]*))(?::(?<port>[\\s\\S]*))?\\z")
        // unreadable_dsn("a host of it is not a name or an [IPv6 address] with an optional :port")
    )) as $hosts
  # (jq 1.6 gives no groups at all for a match of an empty string, hence the // "" after each.)
  | [ (["user", $credentials.user // ""], ["password", $credentials.password // ""]),
      ["host", ($hosts | map(.address // .name // "") | join(","))],
      ["port", ($hosts | map(.port // "") | join(","))],
      ["dbname", .dbname // ""]
      | select(.[1] != "")
      | .[1] |= percent_decoded ]
    + (.query // ""
      | split("&")
      | if .[-1] == "" then .[:-1] else . end  # libpq takes a trailing &
      | map(
          capture("\\A(?<keyword>[^=]*)=(?<value>[^=]*)\\z")
            // unreadable_dsn("a query parameter of it is not one keyword=value")
          | [(.keyword // "" | percent_decoded), (.value // "" | percent_decoded)]
          | if . == ["ssl", "true"] then ["sslmode", "require"] else . end
        ));

# keyword=value settings -> [[keyword, value]], as libpq's conninfo_parse reads them: blanks around =, values in
# single quotes or bare up to a blank, a backslash escaping the next character.
def setting_pairs:
  "[ \\t\\n\\x0B\\f\\r]" as $blank
  | "\($blank)*(?<keyword>[^=\\s]+)\($blank)*=\($blank)*(?<value>'(?:[^'\\\\]|\\\\[\\s\\S])*'|(?!')(?:[^ \\t\\n\\x0B\\f\\r\\\\]|\\\\[\\s\\S]?)*)" as $pair
  | if test("\\A(?:\($pair))*\($blank)*\\z") then . else unreadable_dsn("it is not a list of keyword=value settings") end
  | [match($pair; "g") | .captures | map({(.name): .string}) | add
     | [.keyword, (.value // "" | if startswith("'") then .[1:-1] else . end | gsub("\\\\(?<c>[\\s\\S]|\\z)"; .c // ""))]];

# libpq's spelling of an old keyword (conninfo_storeval).
def translated: if .[0] == "requiressl" then ["sslmode", (if .[1] | startswith("1") then "require" else "prefer" end)] else . end;

# $PGVECTOR_DSN -> {"PGHOST": ..., ...}: a postgresql:// URI, keyword=value settings, or else (as psql takes it) a
# database name.
def connection_settings:
  $ENV.PGVECTOR_DSN
  | if test("\\Apostgres(?:ql)?://") then uri_pairs
    elif test("=") then setting_pairs
    else [["dbname", .]]
    end
  | map(translated)
  | reduce .[] as [$keyword, $value] ({};
      if connection_variables | has($keyword) then .[connection_variables[$keyword]] = $value
      elif IN($keyword; keywords_without_variable[]) then
        refuse(
          "PGVECTOR_DSN sets \($keyword), which psql_restore.sh cannot hand to psql without its command line (where "
          + "every local user can read it): leave it out, or set it in a connection service file and name the "
          + "service in PGVECTOR_DSN (service=NAME)."
        )
      else unreadable_dsn("it sets a keyword libpq does not have")
      end);

def connection_exports: connection_settings | to_entries[] | "export \(.key)=\(.value | @sh)";
