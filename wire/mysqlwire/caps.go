package mysqlwire

import "github.com/switchyard/switchyard/wire/mysqlproto"

// proxyCaps is what the proxy offers clients. Query attributes, optional
// metadata and MariaDB's extended capabilities are not offered: they
// change the framing the relay reads. Compression is between the client
// and the proxy only (mysqlproto.CompressedConn).
const proxyCaps = mysqlproto.CapCompress | mysqlproto.CapLongPassword | mysqlproto.CapFoundRows | mysqlproto.CapLongFlag | mysqlproto.CapConnectWithDB |
	mysqlproto.CapLocalFiles | mysqlproto.CapIgnoreSpace | mysqlproto.CapProtocol41 | mysqlproto.CapInteractive | mysqlproto.CapIgnoreSigpipe |
	mysqlproto.CapTransactions | mysqlproto.CapSecureConnection | mysqlproto.CapMultiStatements | mysqlproto.CapMultiResults |
	mysqlproto.CapPSMultiResults | mysqlproto.CapPluginAuth | mysqlproto.CapConnectAttrs | mysqlproto.CapPluginAuthLenenc |
	mysqlproto.CapSessionTrack | mysqlproto.CapDeprecateEOF

// mirrorCaps are the client capabilities that change what the server sends
// back (framing of result sets, affected-row semantics, OK packet layout,
// SQL parsing). A server connection serves a client only with the same
// bits, so raw relay is exact (one exception: every server connection
// negotiates SESSION_TRACK where offered, and the relay strips the session
// state from the few OK packets that carry it for a client without;
// tracking.go): MULTI_STATEMENTS is switched per session
// with COM_SET_OPTION; the others (fixedCaps) are fixed at the handshake,
// and a pooled connection opened with others is re-opened in its slot.
const mirrorCaps = mysqlproto.CapFoundRows | mysqlproto.CapIgnoreSpace | mysqlproto.CapMultiStatements | mysqlproto.CapMultiResults |
	mysqlproto.CapPSMultiResults | mysqlproto.CapSessionTrack | mysqlproto.CapDeprecateEOF | mysqlproto.CapLocalFiles

// fixedCaps are the mirrored capabilities a server takes only at the
// handshake.
const fixedCaps = mirrorCaps &^ mysqlproto.CapMultiStatements

// defaultCollation is utf8mb4_general_ci, understood by MySQL 5.7+,
// MySQL 8 and MariaDB alike.
const defaultCollation = 45
