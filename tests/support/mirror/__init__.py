"""The lab's package mirror: the URLs bootstrap installs from, served over HTTPS by a lab box.

One concern per module: cache (built once, outside the clone), packages (the
.debs nfpm builds from the Go-built programs and each project's own
packaging), debian (trixie's packages, fetched with a scratch apt), rootfs (a
throwaway trixie root to install into), signing (the lab's archive key), site
(the files behind every URL, apt repositories signed), server (the web server
run in the box), box (the mirror in the lab: start, stop, what was fetched).
"""
