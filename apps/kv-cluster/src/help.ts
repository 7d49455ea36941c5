/** The text of `raft-kv --help` (also in the README). */
export const HELP = `raft-kv: a replicated key-value store on Raft (LevelDB + WebSockets), with an HTTP API

Usage:
  raft-kv node --id ID --listen HOST:PORT --http HOST:PORT --data DIR --peers LIST [options]
  raft-kv cluster --nodes N --data DIR [--peer-port 7001] [--http-port 8001] [options]
  raft-kv members --http HOST:PORT [list | add ID URL | remove ID | cancel]
  raft-kv transfer --http HOST:PORT ID
  raft-kv --help | --version

raft-kv node: run one node
  --id ID                 this node's id (letters, digits, '_', '.', '-'); one of --peers
  --listen HOST:PORT      the peer port: Raft traffic (WebSocket) and requests forwarded
                          by followers
  --http HOST:PORT        the client HTTP API. Either address may be :PORT, which
                          listens on every interface (give a --secret then)
  --data DIR              the data directory (LevelDB); created if missing. Never reuse
                          an id with a wiped directory: a node that forgot its log and
                          vote can break the cluster's guarantees
  --peers LIST            the peers this node knows at start, itself included:
                          ID=ws://HOST:PORT,... (wss:// with --peer-cert-file). The id
                          that sorts first bootstraps a
                          new cluster of all of them (unless --join). Peers added later
                          (raft-kv members add) are learned from the cluster.
  --join                  never bootstrap: wait to be added to a running cluster
                          (raft-kv members add ID URL, on any node)
  --snapshot-every N      snapshot the state and compact the log every N applied
                          entries; 0 turns snapshots off (default 10000)
  --election-timeout MIN-MAX
                          election timeout range in ms (default 1000-2000)
  --heartbeat-interval MS leader heartbeat interval in ms, below MIN (default 100,
                          or MIN/2 when that is smaller)
  --secret S              cluster secret; peers and forwarded requests are authenticated
                          with it (default: $RAFT_SECRET, else none). Required to listen
                          on a non-loopback address; without it, followers do not
                          forward /cluster changes (send those to the leader)
  --insecure              allow a non-loopback --listen or --http without a secret
  --peer-cert-file F      this node's certificate (PEM; its CN or a DNS name must be its
                          id): mutual TLS on the peer port, wss:// peer URLs
  --peer-key-file F       its private key
  --peer-trusted-ca-file F  the CA that signs every member's certificate
  --cert-file F           HTTPS for the client API: the certificate (PEM)
  --key-file F            its private key
  --trusted-ca-file F     with --cert-file: clients must present a certificate it signed
  --allowed-hosts LIST    host names the API answers to (Host header), besides the --http
                          host, localhost, 127.0.0.1 and ::1; * for any (421 otherwise)
  --admin-token T         needed (Authorization: Bearer T) by /cluster/* changes
                          (default: $RAFT_KV_ADMIN_TOKEN; without one, only loopback
                          clients may make them)
  --request-timeout MS    longest time a client request may take (default 5000)
  --log-level LEVEL       fatal, error, warn, info, debug, trace or silent (default info)

raft-kv cluster: run N nodes on this machine, each its own process, until Ctrl-C
  --nodes N               how many nodes, 1 to 15 (3 or 5 recommended)
  --data DIR              data directories DIR/n1 ... DIR/nN; running again recovers them
  --host HOST             the interface every node listens on (default 127.0.0.1)
  --peer-port P           peer port of n1; n2 gets P+1, ... (default 7001)
  --http-port P           HTTP port of n1; n2 gets P+1, ... (default 8001)
  --secret S, --admin-token T, --request-timeout MS, --log-level LEVEL,
  --snapshot-every N, --election-timeout MIN-MAX, --heartbeat-interval MS: passed to
  every node. Without --secret, a random one for this run; without --admin-token, a
  random one written to DIR/admin-token

raft-kv members / transfer: change the membership of a running cluster, through the
HTTP API of any node (--http HOST:PORT). Each change is retried until done or --timeout
MS (default 60000). --admin-token T (default: $RAFT_KV_ADMIN_TOKEN) is sent with each
change; --cacert FILE talks HTTPS to a node whose certificate FILE's CA signed.
  members [list]          the leader, the members and the peer URLs this node knows
  members add ID URL      add node ID, started with --join and listening on URL
                          (ws://HOST:PORT, its --listen): it catches up, then votes
  members remove ID       remove node ID from the members (it may be the leader)
  members cancel          drop learners still catching up (a change that is stuck)
  transfer ID             make member ID the leader (before restarting the leader)

HTTP API (every node; followers forward to the leader). Bodies: Content-Type
application/json (415 otherwise); a Host not allowed: 421; a foreign Origin on a change: 403:
  PUT    /kv/{key}        body {"value": V}                 200 {"value": V}
  GET    /kv/{key}        linearizable read                 200 {"value": V} | 404
  DELETE /kv/{key}                                          200 {} | 404
  POST   /kv/{key}/cas    body {"expected": E, "value": V}  200 | 404 | 409 {"value": current}
  GET    /status          this node's Raft status           200
  GET    /cluster         leader, configuration, peer URLs  200
  POST   /cluster/members body {"id": ID, "url": URL}       200 | 400 | 409
  DELETE /cluster/members/{id}                              200 | 400 | 409
  DELETE /cluster/learners  cancel a change still catching up 200
  POST   /cluster/leader  body {"id": ID}                   200 | 400
  /cluster/* changes: 401 without the admin token (403 from another host when none is set)
  503: no leader known, retry. 504: timed out, a write may or may not have happened.
  Writes take an Idempotency-Key header: a retry with the same key and request gets the
  first answer (Idempotent-Replayed: true), never a second application; another request
  with the same key gets 422.

Exit codes: 0 after a clean stop (SIGINT, SIGTERM), 1 on a startup error or a failed store.
`;
