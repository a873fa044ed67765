package mysqlwire

import (
	"encoding/binary"
)

// Capability flags (protocol 41 numbering).
const (
	capLongPassword     uint32 = 1 << 0
	capFoundRows        uint32 = 1 << 1
	capLongFlag         uint32 = 1 << 2
	capConnectWithDB    uint32 = 1 << 3
	capNoSchema         uint32 = 1 << 4
	capCompress         uint32 = 1 << 5
	capODBC             uint32 = 1 << 6
	capLocalFiles       uint32 = 1 << 7
	capIgnoreSpace      uint32 = 1 << 8
	capProtocol41       uint32 = 1 << 9
	capInteractive      uint32 = 1 << 10
	capSSL              uint32 = 1 << 11
	capIgnoreSigpipe    uint32 = 1 << 12
	capTransactions     uint32 = 1 << 13
	capReserved         uint32 = 1 << 14
	capSecureConnection uint32 = 1 << 15
	capMultiStatements  uint32 = 1 << 16
	capMultiResults     uint32 = 1 << 17
	capPSMultiResults   uint32 = 1 << 18
	capPluginAuth       uint32 = 1 << 19
	capConnectAttrs     uint32 = 1 << 20
	capPluginAuthLenenc uint32 = 1 << 21
	capExpiredPasswords uint32 = 1 << 22
	capSessionTrack     uint32 = 1 << 23
	capDeprecateEOF     uint32 = 1 << 24
)

// proxyCaps is what the proxy offers clients. Query attributes, optional
// metadata and MariaDB's extended capabilities are not offered: they
// change the framing the relay reads. Compression is between the client
// and the proxy only (compress.go).
const proxyCaps = capCompress | capLongPassword | capFoundRows | capLongFlag | capConnectWithDB |
	capLocalFiles | capIgnoreSpace | capProtocol41 | capInteractive | capIgnoreSigpipe |
	capTransactions | capSecureConnection | capMultiStatements | capMultiResults |
	capPSMultiResults | capPluginAuth | capConnectAttrs | capPluginAuthLenenc |
	capSessionTrack | capDeprecateEOF

// mirrorCaps are the client capabilities that change what the server sends
// back (framing of result sets, affected-row semantics, OK packet layout,
// SQL parsing). A server connection serves a client only with the same
// bits, so raw relay is exact: MULTI_STATEMENTS is switched per session
// with COM_SET_OPTION; the others (fixedCaps) are fixed at the handshake,
// and a pooled connection opened with others is re-opened in its slot.
const mirrorCaps = capFoundRows | capIgnoreSpace | capMultiStatements | capMultiResults |
	capPSMultiResults | capSessionTrack | capDeprecateEOF | capLocalFiles

// fixedCaps are the mirrored capabilities a server takes only at the
// handshake.
const fixedCaps = mirrorCaps &^ capMultiStatements

// COM_SET_OPTION arguments.
const (
	optMultiStatementsOn  = 0
	optMultiStatementsOff = 1
)

// Status flags of OK and EOF packets.
const (
	statusInTrans            uint16 = 1 << 0
	statusAutocommit         uint16 = 1 << 1
	statusMoreResults        uint16 = 1 << 3
	statusCursorExists       uint16 = 1 << 6
	statusLastRowSent        uint16 = 1 << 7
	statusSessionStateChange uint16 = 1 << 14
)

// Commands.
const (
	comQuit             byte = 0x01
	comInitDB           byte = 0x02
	comQuery            byte = 0x03
	comFieldList        byte = 0x04
	comStatistics       byte = 0x09
	comProcessKill      byte = 0x0c
	comPing             byte = 0x0e
	comChangeUser       byte = 0x11
	comStmtPrepare      byte = 0x16
	comStmtExecute      byte = 0x17
	comStmtSendLongData byte = 0x18
	comStmtClose        byte = 0x19
	comStmtReset        byte = 0x1a
	comSetOption        byte = 0x1b
	comStmtFetch        byte = 0x1c
	comResetConnection  byte = 0x1f
)

// Packet headers.
const (
	hdrOK         byte = 0x00
	hdrAuthMore   byte = 0x01
	hdrLocalInfil byte = 0xfb
	hdrEOF        byte = 0xfe
	hdrERR        byte = 0xff
)

// Authentication plugins.
const (
	pluginNative      = "mysql_native_password"
	pluginCachingSHA2 = "caching_sha2_password"
	pluginClearText   = "mysql_clear_password"
)

// defaultCollation is utf8mb4_general_ci, understood by MySQL 5.7+,
// MySQL 8 and MariaDB alike.
const defaultCollation = 45

// Handshake is the server's initial packet (protocol version 10).
type Handshake struct {
	ServerVersion string
	ConnectionID  uint32
	Scramble      []byte // 20 bytes of auth-plugin data, without the NUL
	Capabilities  uint32
	Collation     uint8
	Status        uint16
	AuthPlugin    string
}

// Encode appends the packet payload to dst.
func (h *Handshake) Encode(dst []byte) []byte {
	dst = append(dst, 10)
	dst = append(dst, h.ServerVersion...)
	dst = append(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, h.ConnectionID)
	dst = append(dst, h.Scramble[:8]...)
	dst = append(dst, 0)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.Capabilities))
	dst = append(dst, h.Collation)
	dst = binary.LittleEndian.AppendUint16(dst, h.Status)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.Capabilities>>16))
	dst = append(dst, byte(len(h.Scramble)+1))
	dst = append(dst, make([]byte, 10)...)
	dst = append(dst, h.Scramble[8:]...)
	dst = append(dst, 0)
	dst = append(dst, h.AuthPlugin...)
	return append(dst, 0)
}

// Decode parses a server handshake. Byte slices alias p.
func (h *Handshake) Decode(p []byte) error {
	r := reader{b: p}
	if v := r.byte(); v != 10 {
		if r.err != nil {
			return r.err
		}
		return errMalformed
	}
	h.ServerVersion = string(r.nulString())
	h.ConnectionID = r.uint32()
	part1 := r.bytes(8)
	r.byte()
	h.Capabilities = uint32(r.uint16())
	if len(r.b) == 0 {
		if r.err != nil {
			return r.err
		}
		h.Scramble = part1
		return nil
	}
	h.Collation = r.byte()
	h.Status = r.uint16()
	h.Capabilities |= uint32(r.uint16()) << 16
	authLen := int(r.byte())
	r.bytes(10)
	if r.err != nil {
		return r.err
	}
	scramble := append([]byte(nil), part1...)
	if h.Capabilities&capSecureConnection != 0 {
		n := max(13, authLen-8)
		part2 := r.bytes(n)
		if r.err != nil {
			return r.err
		}
		// part2 ends with a NUL that is not part of the scramble.
		if len(part2) > 0 && part2[len(part2)-1] == 0 {
			part2 = part2[:len(part2)-1]
		}
		scramble = append(scramble, part2...)
	}
	h.Scramble = scramble
	if h.Capabilities&capPluginAuth != 0 {
		h.AuthPlugin = string(r.nulStringOrEOF())
	}
	return r.err
}

// HandshakeResponse is the client's reply to the handshake (protocol 41),
// or, when SSLRequest is true, the short packet that asks for TLS first.
type HandshakeResponse struct {
	Capabilities uint32
	MaxPacket    uint32
	Collation    uint8
	SSLRequest   bool
	User         string
	AuthResponse []byte // aliases the decoded packet
	Database     string
	AuthPlugin   string
	Attributes   map[string]string
}

// Decode parses a handshake response. Pre-4.1 clients are refused: every
// driver in use speaks protocol 41.
func (h *HandshakeResponse) Decode(p []byte) error {
	*h = HandshakeResponse{}
	r := reader{b: p}
	h.Capabilities = r.uint32()
	if r.err != nil {
		return r.err
	}
	if h.Capabilities&capProtocol41 == 0 {
		return errOldProtocol
	}
	h.MaxPacket = r.uint32()
	h.Collation = r.byte()
	r.bytes(23)
	if r.err != nil {
		return r.err
	}
	if len(r.b) == 0 && h.Capabilities&capSSL != 0 {
		h.SSLRequest = true
		return nil
	}
	h.User = string(r.nulString())
	switch {
	case h.Capabilities&capPluginAuthLenenc != 0:
		h.AuthResponse = r.lenEncBytes()
	case h.Capabilities&capSecureConnection != 0:
		h.AuthResponse = r.bytes(int(r.byte()))
	default:
		h.AuthResponse = r.nulString()
	}
	if r.err != nil {
		return r.err
	}
	if h.Capabilities&capConnectWithDB != 0 && len(r.b) > 0 {
		h.Database = string(r.nulStringOrEOF())
	}
	if h.Capabilities&capPluginAuth != 0 && len(r.b) > 0 {
		h.AuthPlugin = string(r.nulStringOrEOF())
	}
	if h.Capabilities&capConnectAttrs != 0 && len(r.b) > 0 {
		attrs := reader{b: r.lenEncBytes()}
		if r.err != nil {
			return r.err
		}
		for len(attrs.b) > 0 && attrs.err == nil {
			k := attrs.lenEncBytes()
			v := attrs.lenEncBytes()
			if attrs.err != nil {
				return attrs.err
			}
			if h.Attributes == nil {
				h.Attributes = make(map[string]string)
			}
			if len(h.Attributes) < 64 {
				h.Attributes[string(k)] = string(v)
			}
		}
		if attrs.err != nil {
			return attrs.err
		}
	}
	return r.err
}

// Encode appends the packet payload to dst (used toward servers, and by
// tests).
func (h *HandshakeResponse) Encode(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, h.Capabilities)
	dst = binary.LittleEndian.AppendUint32(dst, h.MaxPacket)
	dst = append(dst, h.Collation)
	dst = append(dst, make([]byte, 23)...)
	if h.SSLRequest {
		return dst
	}
	dst = append(dst, h.User...)
	dst = append(dst, 0)
	switch {
	case h.Capabilities&capPluginAuthLenenc != 0:
		dst = appendLenEnc(dst, uint64(len(h.AuthResponse)))
		dst = append(dst, h.AuthResponse...)
	case h.Capabilities&capSecureConnection != 0:
		dst = append(dst, byte(len(h.AuthResponse)))
		dst = append(dst, h.AuthResponse...)
	default:
		dst = append(dst, h.AuthResponse...)
		dst = append(dst, 0)
	}
	if h.Capabilities&capConnectWithDB != 0 {
		dst = append(dst, h.Database...)
		dst = append(dst, 0)
	}
	if h.Capabilities&capPluginAuth != 0 {
		dst = append(dst, h.AuthPlugin...)
		dst = append(dst, 0)
	}
	if h.Capabilities&capConnectAttrs != 0 {
		var kv []byte
		for k, v := range h.Attributes {
			kv = appendLenEncString(kv, k)
			kv = appendLenEncString(kv, v)
		}
		dst = appendLenEnc(dst, uint64(len(kv)))
		dst = append(dst, kv...)
	}
	return dst
}

// OK is an OK packet (header 0x00, or 0xfe when it ends a result set under
// CLIENT_DEPRECATE_EOF).
type OK struct {
	AffectedRows uint64
	LastInsertID uint64
	Status       uint16
	Warnings     uint16
	Info         []byte // aliases the packet
	SessionState []byte // raw session-state-change data; aliases the packet
}

// DecodeOK parses an OK packet sent to a client with capabilities caps.
func DecodeOK(p []byte, caps uint32) (OK, error) {
	var ok OK
	r := reader{b: p}
	if h := r.byte(); h != hdrOK && h != hdrEOF {
		return ok, errMalformed
	}
	ok.AffectedRows, _ = r.lenEnc()
	ok.LastInsertID, _ = r.lenEnc()
	ok.Status = r.uint16()
	ok.Warnings = r.uint16()
	if r.err != nil {
		return ok, r.err
	}
	if caps&capSessionTrack != 0 {
		if len(r.b) > 0 {
			ok.Info = r.lenEncBytes()
		}
		if ok.Status&statusSessionStateChange != 0 && len(r.b) > 0 {
			ok.SessionState = r.lenEncBytes()
		}
	} else {
		ok.Info = r.rest()
	}
	return ok, r.err
}

// appendOK appends an OK payload for a client with capabilities caps.
func appendOK(dst []byte, caps uint32, hdr byte, affected, lastID uint64, status, warnings uint16) []byte {
	dst = append(dst, hdr)
	dst = appendLenEnc(dst, affected)
	dst = appendLenEnc(dst, lastID)
	dst = binary.LittleEndian.AppendUint16(dst, status&^statusSessionStateChange)
	dst = binary.LittleEndian.AppendUint16(dst, warnings)
	if caps&capSessionTrack != 0 {
		dst = append(dst, 0) // empty info
	}
	return dst
}

// EOF is an EOF packet (clients without CLIENT_DEPRECATE_EOF).
type EOF struct {
	Warnings uint16
	Status   uint16
}

// DecodeEOF parses an EOF packet.
func DecodeEOF(p []byte) (EOF, error) {
	r := reader{b: p}
	if r.byte() != hdrEOF || len(p) >= 9 {
		return EOF{}, errMalformed
	}
	e := EOF{Warnings: r.uint16(), Status: r.uint16()}
	return e, r.err
}

func appendEOF(dst []byte, status uint16) []byte {
	dst = append(dst, hdrEOF, 0, 0)
	return binary.LittleEndian.AppendUint16(dst, status)
}

// ERR is an ERR packet.
type ERR struct {
	Code    uint16
	State   string
	Message string
}

// DecodeERR parses an ERR packet (protocol 41: with a SQLSTATE marker).
func DecodeERR(p []byte) (ERR, error) {
	r := reader{b: p}
	if r.byte() != hdrERR {
		return ERR{}, errMalformed
	}
	e := ERR{Code: r.uint16()}
	if r.err != nil {
		return e, r.err
	}
	if len(r.b) >= 6 && r.b[0] == '#' {
		e.State = string(r.b[1:6])
		r.b = r.b[6:]
	}
	e.Message = string(r.rest())
	return e, nil
}

func appendERR(dst []byte, code uint16, state, msg string) []byte {
	dst = append(dst, hdrERR)
	dst = binary.LittleEndian.AppendUint16(dst, code)
	if len(state) != 5 {
		state = "HY000"
	}
	dst = append(dst, '#')
	dst = append(dst, state...)
	return append(dst, msg...)
}

// terminator reports whether a packet payload ends a row stream: an EOF
// packet, or an OK with an 0xfe header under CLIENT_DEPRECATE_EOF. A row
// can start with 0xfe only if it is at least 16 MiB long (a lenenc of 8
// bytes), and an old-style EOF is shorter than 9 bytes.
func terminator(first byte, length int, deprecateEOF bool) bool {
	if first != hdrEOF {
		return false
	}
	if deprecateEOF {
		return length < maxChunk
	}
	return length < 9
}

// statusOf reads the status flags of a terminator or OK packet.
func statusOf(p []byte, caps uint32) (uint16, bool) {
	if len(p) == 0 {
		return 0, false
	}
	if p[0] == hdrEOF && len(p) < 9 && caps&capDeprecateEOF == 0 {
		e, err := DecodeEOF(p)
		return e.Status, err == nil
	}
	ok, err := DecodeOK(p, caps)
	return ok.Status, err == nil
}
