# bench/report.awk - markdown report of a bench/run.sh run.
# usage: awk -f report.awk env.txt notes.txt results.txt   (settings in ENVIRON)
# results.txt: one line per load, key=value, with server=, workload=, round=.
# Tables show the median over rounds; "spread" is (max - min) / median.
# Plain POSIX awk (mawk is fine).

function rate(x) {
    x += 0
    if (x >= 1e6) return sprintf("%.2fM", x / 1e6)
    if (x >= 1e4) return sprintf("%.1fk", x / 1e3)
    return sprintf("%.0f", x)
}
function us(x) {
    if (x == "") return "–"
    x += 0
    if (x < 1000) return sprintf("%.0f µs", x)
    if (x < 1e6) return sprintf("%.1f ms", x / 1e3)
    return sprintf("%.2f s", x / 1e6)
}
function bytes(x) {
    if (x == "") return "–"
    x += 0
    if (x >= 10240 || x <= -10240) return sprintf("%.1f KiB", x / 1024)
    return sprintf("%.0f B", x)
}
function ratio(a, b) {
    if (a == "" || b == "" || b + 0 == 0) return "–"
    return sprintf("%.2f×", a / b)
}
function kib(x) { return (x == "") ? "–" : (x >= 10240 ? sprintf("%.1f MiB", x / 1024) : sprintf("%.0f KiB", x)) }
function pct(x) { return (x == "") ? "–" : sprintf("%.0f%%", x) }

# values of (server, workload, key) over rounds, joined by spaces; rounds
# that other programs disturbed are set aside when undisturbed ones exist
function put(s, w, k, v, clean,   key) {
    key = s SUBSEP w SUBSEP k
    allv[key] = (key in allv) ? allv[key] " " v : v
    if (clean) { cleanv[key] = (key in cleanv) ? cleanv[key] " " v : v; hasclean[s, w] = 1 }
}
function series(s, w, k,   key) {
    key = s SUBSEP w SUBSEP k
    if ((s, w) in hasclean) return (key in cleanv) ? cleanv[key] : ""
    return (key in allv) ? allv[key] : ""
}
function median(s, w, k,   v, n, a, i, j, t) {
    v = series(s, w, k)
    if (v == "") return ""
    n = split(v, a, " ")
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (n % 2) return a[(n + 1) / 2] + 0
    return (a[n / 2] + a[n / 2 + 1]) / 2
}
function spread(s, w, k,   v, n, a, i, lo, hi, m) {
    v = series(s, w, k)
    if (v == "") return "–"
    n = split(v, a, " ")
    if (n < 2) return "–"
    lo = hi = a[1] + 0
    for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
    m = median(s, w, k)
    return (m > 0) ? sprintf("±%.0f%%", 50 * (hi - lo) / m) : "–"
}
function sum(s, w, k,   key, n, a, i, t) {   # over all rounds
    key = s SUBSEP w SUBSEP k
    if (!(key in allv)) return ""
    n = split(allv[key], a, " "); t = 0
    for (i = 1; i <= n; i++) t += a[i]
    return t
}
function addserver(w, s) {
    if (!((w, s) in seen)) { seen[w, s] = 1; order[w, ++nserv[w]] = s }
}
function note(msg) { notes[++nnotes] = msg }

# who limited the run: a core is "full" at >= 90% busy (user + system + softirq)
function bottleneck(s, w,   cs, cl) {
    cs = median(s, w, "cpu" SCPU "_busy_pct"); cl = median(s, w, "cpu" LCPU "_busy_pct")
    if (cs == "" || cl == "") { cs = median(s, w, "srv_cpu_pct"); cl = median(s, w, "lg_cpu_pct") }
    if (cs == "" || cl == "") return "?"
    if (cs >= 90 && cl >= 90) return "both cores"
    if (cs >= 90) return "**server**"
    if (cl >= 90) return "load gen"
    return "neither core full"
}

BEGIN {
    SCPU = ENVIRON["SERVER_CPU"] + 0; LCPU = ENVIRON["LOADGEN_CPU"] + 0
    DIST = (ENVIRON["DISTURBED"] != "") ? ENVIRON["DISTURBED"] + 0 : 15
    W2P99 = (ENVIRON["W2_CHAT_P99"] != "") ? ENVIRON["W2_CHAT_P99"] + 0 : 100
    nconn = split(ENVIRON["ECHO_CONNS"], conns, " ")
    for (i = 1; i <= nconn; i++) { wl[i] = "echo_c" conns[i]; wsize[wl[i]] = ENVIRON["ECHO_SIZE"]; wconns[wl[i]] = conns[i] }
    wl[++nconn] = "bulk"; wsize["bulk"] = ENVIRON["BULK_SIZE"]; wconns["bulk"] = ENVIRON["BULK_CONNS"]
}

FILENAME ~ /env\.txt$/ { env[++nenv] = $0; next }
FILENAME ~ /notes\.txt$/ { if ($0 != "") note($0); next }

{
    delete kv
    for (i = 1; i <= NF; i++) { eq = index($i, "="); if (eq) kv[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
    s = kv["server"]; w = kv["workload"]; r = kv["round"]
    addserver(w, s)
    st = ("status" in kv) ? kv["status"] : "ok"
    if (st == "server-failed" || st == "no-output") {
        note(s " " w " round " r ": " st " (see raw/" s ".server.log)")
        put(s, w, "failed", 1, 1)
        next
    }
    # a dead server's lost CPU time reads as "others": not a disturbance
    clean = (kv["others_pct"] + 0 < DIST || kv["server_alive"] == "no")
    for (k in kv) if (kv[k] ~ /^-?[0-9.]+$/) put(s, w, k, kv[k], clean)
    prob = ""
    if (kv["server_alive"] == "no") prob = prob "; server died"
    if (kv["errors"] + 0 > 0 && w != "idle") prob = prob "; errors=" kv["errors"] " (connect " kv["conn_fail"] ", reset " kv["reset"] ", eof " kv["eof"] ", io " kv["io_err"] ", mismatch " kv["mismatch"] ")"
    if (("verify" in kv) && kv["verify"] != "ok") prob = prob "; echoed bytes did not verify"
    if (kv["starved"] + 0 > 0) prob = prob "; " kv["starved"] " of " kv["live"] " connections got no reply in the measured window"
    if (("primed" in kv) && kv["primed"] + 0 < kv["conns"] + 0) prob = prob "; only " kv["primed"] " of " kv["conns"] " connections completed a first round trip"
    if (kv["lost"] + 0 > 0) prob = prob "; " kv["lost"] " of " kv["expected"] " deliveries missing after the drain"
    if (kv["dup"] + 0 > 0) prob = prob "; " kv["dup"] " duplicated deliveries"
    if (kv["reorder"] + 0 > 0) prob = prob "; " kv["reorder"] " out-of-order deliveries"
    if (("sync" in kv) && kv["sync"] != "ok") { prob = prob "; not every chat client was in the room before the load"; badsync[s, w] = 1 }
    if (w == "idle" && st != "ok") prob = prob "; " st ": " kv["pinged"] " of " kv["conns"] " connections echoed" (st == "server-died" ? " before the server died" : "")
    if (kv["closed_by_peer"] + 0 > 0) prob = prob "; server closed " kv["closed_by_peer"] " idle connections"
    if (prob != "") { note(s " " w " round " r ": " substr(prob, 3)); flagged[s, w] = 1 }
    if (!clean) {
        ndist[s, w]++
        t = kv["others_pct"] "%"
        if ((s, w) in dlist) t = dlist[s, w] ", " t
        dlist[s, w] = t
    }
    nround[s, w]++
    if (!((s, w) in firstseen)) { firstseen[s, w] = 1; sw[++nsw] = s SUBSEP w }
    if (w ~ /^w2_/ && !(w in w2seen)) { w2seen[w] = 1; w2list[++nw2] = w }
}

# workers2: who ran where
function w2name(s,   both, one) {
    both = " (CPUs " SCPU "," LCPU ")"; one = " (CPU " SCPU ")"
    if (s == "coronet_w2") return "**coronet --workers 2**" both
    if (s == "coronet_chat_w2") return "**coronet chat --workers 2**" both
    if (s == "coronet") return "coronet, 1 worker" one
    if (s == "coronet_chat") return "coronet chat, 1 worker" one
    if (s == "go_p2") return "Go, GOMAXPROCS=2" both
    if (s == "go_chat_p2") return "Go chat, GOMAXPROCS=2" both
    if (s == "go") return "Go, GOMAXPROCS=1" one
    if (s == "go_chat") return "Go chat, GOMAXPROCS=1" one
    return s
}
# the marks of a cell: ! a run had a problem, ~ every round was disturbed
function marks(s, w) {
    return (((s, w) in flagged) ? " !" : "") ((((s, w) in ndist) && !((s, w) in hasclean)) ? " ~" : "")
}
function w2_echo_table(w,   i, s, m, cor) {
    printf "#### Echo, %s-byte ping-pong, %s connections\n\n", ENVIRON["ECHO_SIZE"], substr(w, 10)
    cor = median("coronet_w2", w, "msgs_s")
    printf "| server | msgs/s | coronet ×2 ÷ server | p50 | p99 | spread | errors | server CPU | loadgen CPU | CPU%d busy | CPU%d busy | others |\n", SCPU, LCPU
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nserv[w]; i++) {
        s = order[w, i]
        m = median(s, w, "msgs_s")
        if (m == "") { printf "| %s | failed | | | | | | | | | | |\n", w2name(s); continue }
        printf "| %s | %s%s | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", w2name(s),
            rate(m), marks(s, w), ratio(cor, m), us(median(s, w, "p50_us")),
            us(median(s, w, "p99_us")), spread(s, w, "msgs_s"), sum(s, w, "errors") + sum(s, w, "starved"),
            pct(median(s, w, "srv_cpu_pct")), pct(median(s, w, "lg_cpu_pct")),
            pct(median(s, w, "cpu" SCPU "_busy_pct")), pct(median(s, w, "cpu" LCPU "_busy_pct")),
            pct(median(s, w, "others_pct"))
    }
    print ""
}
# a chat rate is kept up with: nothing lost, every client synced, p99 <= W2P99 ms
function kept_up(s, w,   p) {
    p = median(s, w, "p99_us")
    return p != "" && sum(s, w, "lost") == 0 && !((s, w) in badsync) && p <= W2P99 * 1000
}
function w2_chat_table(   j, i, w, s, m, cor, r, best, bestd, names, nn, seen2) {
    printf "#### Chat, %s members: capacity\n\n", ENVIRON["CHAT_CLIENTS"]
    print "Each rate is a separate load (lines/s in total, each line to the other " (ENVIRON["CHAT_CLIENTS"] - 1) " members). *Kept up*: nothing"
    print "lost and p99 ≤ " W2P99 " ms. Server CPU over the whole load generator run (sync, load, drain)."
    print ""
    print "| lines/s | server | deliveries/s | coronet ×2 ÷ server | lost | p50 | p99 | max | server CPU | loadgen CPU | kept up |"
    print "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for (j = 1; j <= nw2; j++) {
        w = w2list[j]
        if (w !~ /^w2_chat_r/) continue
        r = substr(w, 10) + 0
        cor = median("coronet_chat_w2", w, "deliveries_s")
        for (i = 1; i <= nserv[w]; i++) {
            s = order[w, i]
            if (!(s in seen2)) { seen2[s] = 1; names[++nn] = s }
            m = median(s, w, "deliveries_s")
            if (m == "") { printf "| %d | %s | failed | | | | | | | | |\n", r, w2name(s); continue }
            printf "| %d | %s | %s%s | %s | %d | %s | %s | %s | %s | %s | %s |\n", r, w2name(s), rate(m),
                marks(s, w), ratio(cor, m), sum(s, w, "lost"), us(median(s, w, "p50_us")),
                us(median(s, w, "p99_us")), us(median(s, w, "max_us")), pct(median(s, w, "srv_cpu_pct")),
                pct(median(s, w, "lg_cpu_pct")), kept_up(s, w) ? "yes" : "**no**"
            if (kept_up(s, w) && r > best[s]) { best[s] = r; bestd[s] = m }
        }
    }
    print ""
    print "Highest rate kept up with, of those tried:"
    print ""
    for (i = 1; i <= nn; i++) {
        s = names[i]
        if (s in best) printf "- %s: %d lines/s (%s deliveries/s)\n", w2name(s), best[s], rate(bestd[s])
        else printf "- %s: none of the rates tried\n", w2name(s)
    }
    print ""
}

function echo_table(w,   i, s, c, m, bulk, cor) {
    bulk = (w == "bulk")
    printf "### Echo, %s-byte ping-pong, %s connection%s\n\n", wsize[w], wconns[w], (wconns[w] == 1 ? "" : "s")
    cor = median("coronet", w, bulk ? "MiB_s" : "msgs_s")
    printf "| server | %s | coronet ÷ server | p50 | p99 | max | spread | errors | server RSS | server CPU | loadgen CPU | CPU%d busy | CPU%d busy | others | bottleneck |\n", bulk ? "MiB/s (msgs/s)" : "msgs/s", SCPU, LCPU
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for (i = 1; i <= nserv[w]; i++) {
        s = order[w, i]
        m = median(s, w, bulk ? "MiB_s" : "msgs_s")
        if (m == "") { printf "| %s | failed | – | – | – | – | – | – | – | – | – | – | – | – | – |\n", s; continue }
        c = (bulk ? sprintf("%.0f (%s)", m, rate(median(s, w, "msgs_s"))) : rate(m)) marks(s, w)
        printf "| %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", (s == "coronet" ? "**coronet**" : s), c,
            (s == "coronet") ? "1.00×" : ratio(cor, m), us(median(s, w, "p50_us")), us(median(s, w, "p99_us")),
            us(median(s, w, "max_us")), spread(s, w, bulk ? "MiB_s" : "msgs_s"), sum(s, w, "errors") + sum(s, w, "starved"),
            kib(median(s, w, "srv_rss_kib")), pct(median(s, w, "srv_cpu_pct")), pct(median(s, w, "lg_cpu_pct")),
            pct(median(s, w, "cpu" SCPU "_busy_pct")), pct(median(s, w, "cpu" LCPU "_busy_pct")),
            pct(median(s, w, "others_pct")), bottleneck(s, w)
        echo_ratio[s, w] = (s == "coronet") ? "" : ratio(cor, m)
        if (s != "coronet") peers[s] = 1
    }
    print ""
}

END {
    print "# coronet benchmark"
    print ""
    for (i = 1; i <= nenv; i++) print "    " env[i]
    print ""
    print "Method: each server runs alone, freshly started, pinned to CPU " SCPU "; the load generator (bench/loadgen.c, one thread, epoll)"
    print "is pinned to CPU " LCPU ". Echo: every connection sends one message, waits until all of it has come back (compared"
    print "byte for byte with what was sent), records the round-trip time and sends the next; one message in flight per"
    print "connection. Each load: connect, one round trip on every connection, " ENVIRON["WARMUP"] " s warm-up, " ENVIRON["DURATION"] " s measured; " ENVIRON["REPEAT"] " round(s),"
    print "the order of servers reversed every other round; cells are medians over rounds, spread = half the range."
    print "Server RSS: VmRSS at the end of the window. Ratio = coronet ÷ that server (above 1: coronet faster). CPU columns over the measured window: server and loadgen"
    print "= process CPU time (100% = one core); CPU busy = the whole core incl. kernel softirq work (loopback TCP),"
    print "from /proc/stat. A core at ≥90% busy is the bottleneck; when neither is, echo is latency-bound (chat: paced load)."
    print "others = CPU used by other programs on the machine during the window (% of a core); a load with others ≥ " DIST "%"
    print "is disturbed: cells take the median of the undisturbed rounds when there are any (a server with none gets up to"
    print "two extra rounds, bounded budget), and ~ marks a cell where every round was disturbed."
    print ""

    for (j = 1; j <= nconn; j++) if (nserv[wl[j]] > 0) echo_table(wl[j])

    # idle memory
    if (nserv["idle"] > 0) {
        printf "### Idle memory, %s connections\n\n", ENVIRON["IDLE_CONNS"]
        print "Server RSS (VmRSS) and anonymous RSS before and after " ENVIRON["IDLE_CONNS"] " connections that each completed one 64-byte"
        print "echo and then sat idle, 1 s settle time, divided by the connections held; fds per connection from /proc/PID/fd."
        print ""
        cor = median("coronet", "idle", "rss_per_conn")
        print "| server | connections held | RSS growth / conn | anon growth / conn | fds / conn | coronet ÷ server (RSS) |"
        print "|---|---:|---:|---:|---:|---:|"
        for (i = 1; i <= nserv["idle"]; i++) {
            s = order["idle", i]
            m = median(s, "idle", "rss_per_conn")
            if (m == "") { printf "| %s | %s ! | failed | – | – | – |\n", s, median(s, "idle", "pinged"); continue }
            printf "| %s | %s | %s | %s | %s | %s |\n", (s == "coronet" ? "**coronet**" : s), median(s, "idle", "pinged") ((s, "idle") in flagged ? " !" : ""),
                bytes(m), bytes(median(s, "idle", "anon_per_conn")), median(s, "idle", "fds_per_conn"),
                (s == "coronet") ? "1.00×" : ratio(cor, m)
            if (s != "coronet") { peers[s] = 1; idle_ratio[s] = ratio(cor, m) }
        }
        print ""
    }

    # chat
    if (nserv["chat"] > 0) {
        printf "### Chat fan-out, %s members, %s lines/s\n\n", ENVIRON["CHAT_CLIENTS"], ENVIRON["CHAT_RATE"]
        print "Each member sends its share of the lines, paced; every line must reach the 99 others once, in order."
        print "Deliveries/s counted over the measured window; lost = still missing 3 s after the last send;"
        print "latency from the line's scheduled send time to its arrival. Load: ../shared/bench/loadgen.c chat"
        print "mode when present (chat_loadgen=shared in results.txt; its server CPU is then taken over the whole"
        print "loadgen run, including the sync and drain phases), else bench/loadgen.c."
        print ""
        cor = median("coronet_chat", "chat", "deliveries_s")
        print "| server | sent/s | deliveries/s | coronet ÷ server | lost | dup | p50 | p99 | max | server CPU | loadgen CPU | others | bottleneck |"
        print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        for (i = 1; i <= nserv["chat"]; i++) {
            s = order["chat", i]
            m = median(s, "chat", "deliveries_s")
            if (m == "") { printf "| %s | failed | | | | | | | | | | | |\n", s; continue }
            printf "| %s | %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s |\n", (s == "coronet_chat" ? "**coronet_chat**" : s),
                rate(median(s, "chat", "sent_s")), rate(m) marks(s, "chat"),
                (s == "coronet_chat") ? "1.00×" : ratio(cor, m), sum(s, "chat", "lost"), sum(s, "chat", "dup"),
                us(median(s, "chat", "p50_us")), us(median(s, "chat", "p99_us")), us(median(s, "chat", "max_us")),
                pct(median(s, "chat", "srv_cpu_pct")), pct(median(s, "chat", "lg_cpu_pct")), pct(median(s, "chat", "others_pct")), bottleneck(s, "chat")
            if (s != "coronet_chat") {
                chat_ratio[s] = ratio(cor, m)
                chat_p99[s] = ratio(median("coronet_chat", "chat", "p99_us"), median(s, "chat", "p99_us"))
            }
        }
        print ""
    }

    # two workers
    if (nw2 > 0) {
        print "### Two workers"
        print ""
        print "coronet with `--workers 2` and Go at GOMAXPROCS=2 run on both CPUs (" SCPU " and " LCPU "), so they share CPU " LCPU " with the"
        print "load generator; coronet with one worker and Go at GOMAXPROCS=1 are pinned to CPU " SCPU " as elsewhere. On this"
        print "machine two workers can only gain what the load generator leaves of the second core: read the CPU columns"
        print "(server and loadgen CPU: % of one core, a two-core server can reach 200%)."
        print ""
        for (j = 1; j <= nw2; j++) if (w2list[j] ~ /^w2_echo_c/) w2_echo_table(w2list[j])
        for (j = 1; j <= nw2; j++) if (w2list[j] ~ /^w2_chat_r/) { w2_chat_table(); break }
    }

    # the summary: coronet ÷ each peer
    np = 0
    for (s in peers) plist[++np] = s
    for (i = 2; i <= np; i++) { t = plist[i]; for (j = i - 1; j >= 1 && plist[j] > t; j--) plist[j + 1] = plist[j]; plist[j + 1] = t }
    if (np > 0 || nserv["chat"] > 1) {
        print "### Ratios: coronet ÷ peer, from this one run"
        print ""
        print "Throughput columns: above 1 = coronet faster. Idle column: RSS per connection, below 1 = coronet smaller."
        print ""
        h = "| peer |"; sep = "|---|"
        for (j = 1; j <= nconn; j++) if (nserv[wl[j]] > 0) { h = h " echo " wsize[wl[j]] " B × " wconns[wl[j]] " |"; sep = sep "---:|" }
        if (nserv["idle"] > 0) { h = h " idle bytes/conn |"; sep = sep "---:|" }
        print h; print sep
        for (i = 1; i <= np; i++) {
            s = plist[i]; line = "| " s " |"
            for (j = 1; j <= nconn; j++) if (nserv[wl[j]] > 0) line = line " " (((s, wl[j]) in echo_ratio) ? echo_ratio[s, wl[j]] : "–") " |"
            if (nserv["idle"] > 0) line = line " " ((s in idle_ratio) ? idle_ratio[s] : "–") " |"
            print line
        }
        for (s in chat_ratio) print "| " s " (chat) | deliveries/s " chat_ratio[s] ", p99 latency " chat_p99[s] " (below 1 = coronet lower) |"
        print ""
    }

    # the project's goals
    print "### Targets"
    print ""
    g = median("go", "echo_c100", "msgs_s"); c = median("c_libuv", "echo_c100", "msgs_s"); m = median("coronet", "echo_c100", "msgs_s")
    if (m != "" && g != "") printf "- echo, 100 connections, coronet ≥ 1.0× Go (GOMAXPROCS=1): %.2f× — %s\n", m / g, (m / g >= 1.0) ? "met" : "**missed**"
    if (m != "" && c != "") printf "- echo, 100 connections, coronet ≥ 0.85× C libuv: %.2f× — %s\n", m / c, (m / c >= 0.85) ? "met" : "**missed**"
    b = median("coronet", "idle", "rss_per_conn")
    if (b != "") printf "- idle memory ≤ 2 KiB per connection: %s — %s\n", bytes(b), (b <= 2048) ? "met" : "**missed**"
    cd = median("coronet_chat", "chat", "deliveries_s"); gd = median("go_chat", "chat", "deliveries_s")
    if (cd != "" && gd != "") {
        cp = median("coronet_chat", "chat", "p99_us"); gp = median("go_chat", "chat", "p99_us")
        printf "- chat: deliveries/s ≥ Go's (%.2f×) at p99 ≤ Go's (%s vs %s), 0 lost (%d) — %s\n", cd / gd, us(cp), us(gp),
            sum("coronet_chat", "chat", "lost"), (cd >= gd * 0.99 && cp <= gp && sum("coronet_chat", "chat", "lost") == 0) ? "met" : "**missed**"
    } else if (nserv["chat"] > 0 && !(("chat", "coronet_chat") in seen)) print "- chat: no coronet chat row (scripts/chat.lua missing)"
    print ""

    for (i = 1; i <= nsw; i++) {
        split(sw[i], a, SUBSEP)
        if (!((a[1], a[2]) in ndist)) continue
        if ((a[1], a[2]) in hasclean)
            note(a[1] " " a[2] ": " ndist[a[1], a[2]] " of " nround[a[1], a[2]] " rounds disturbed by other programs (others " dlist[a[1], a[2]] "), set aside: the cell uses the other rounds")
        else
            note(a[1] " " a[2] ": every round disturbed by other programs (others " dlist[a[1], a[2]] "): the cell (~) is unreliable")
    }
    if (nnotes > 0) {
        print "### Notes (! in a cell: that run had a problem; ~: disturbed by other programs)"
        print ""
        for (i = 1; i <= nnotes; i++) print "- " notes[i]
        print ""
    }
    if (ENVIRON["CHART_DATA"] != "") chart_data(ENVIRON["CHART_DATA"])
}

# chart_data: the echo sweep for bench/chart.sh, one block per server
# (blocks apart by two blank lines, gnuplot's "index"): a header line
# "conns NAME p50_us p99_us", then one line per connection count with the
# medians; NaN where the server failed or the run had a problem (! cells)
function chart_data(f,   j, i, s, w, m, ns, names, seen3) {
    for (j = 1; j <= nconn; j++) {
        w = wl[j]
        if (w !~ /^echo_c/) continue
        for (i = 1; i <= nserv[w]; i++) if (!(order[w, i] in seen3)) { seen3[order[w, i]] = 1; names[++ns] = order[w, i] }
    }
    for (i = 1; i <= ns; i++) {
        s = names[i]
        if (i > 1) printf "\n\n" > f
        printf "conns %s p50_us p99_us\n", s > f
        for (j = 1; j <= nconn; j++) {
            w = wl[j]
            if (w !~ /^echo_c/) continue
            m = median(s, w, "msgs_s")
            if (m == "" || ((s, w) in flagged)) printf "%s NaN NaN NaN\n", wconns[w] > f
            else printf "%s %s %s %s\n", wconns[w], m, median(s, w, "p50_us"), median(s, w, "p99_us") > f
        }
    }
    close(f)
}
