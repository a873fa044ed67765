package mysqlproto

import (
	"encoding/binary"
)

// Capability flags (protocol 41 numbering).
const (
	CapLongPassword     uint32 = 1 << 0
	CapFoundRows        uint32 = 1 << 1
	CapLongFlag         uint32 = 1 << 2
	CapConnectWithDB    uint32 = 1 << 3
	CapNoSchema         uint32 = 1 << 4
	CapCompress         uint32 = 1 << 5
	CapODBC             uint32 = 1 << 6
	CapLocalFiles       uint32 = 1 << 7
	CapIgnoreSpace      uint32 = 1 << 8
	CapProtocol41       uint32 = 1 << 9
	CapInteractive      uint32 = 1 << 10
	CapSSL              uint32 = 1 << 11
	CapIgnoreSigpipe    uint32 = 1 << 12
	CapTransactions     uint32 = 1 << 13
	CapReserved         uint32 = 1 << 14
	CapSecureConnection uint32 = 1 << 15
	CapMultiStatements  uint32 = 1 << 16
	CapMultiResults     uint32 = 1 << 17
	CapPSMultiResults   uint32 = 1 << 18
	CapPluginAuth       uint32 = 1 << 19
	CapConnectAttrs     uint32 = 1 << 20
	CapPluginAuthLenenc uint32 = 1 << 21
	CapExpiredPasswords uint32 = 1 << 22
	CapSessionTrack     uint32 = 1 << 23
	CapDeprecateEOF     uint32 = 1 << 24
)

// COM_SET_OPTION arguments.
const (
	SetOptionMultiStatementsOn  = 0
	SetOptionMultiStatementsOff = 1
)

// Status flags of OK and EOF packets.
const (
	StatusInTrans            uint16 = 1 << 0
	StatusAutocommit         uint16 = 1 << 1
	StatusMoreResults        uint16 = 1 << 3
	StatusCursorExists       uint16 = 1 << 6
	StatusLastRowSent        uint16 = 1 << 7
	StatusSessionStateChange uint16 = 1 << 14
)

// Commands.
const (
	ComQuit             byte = 0x01
	ComInitDB           byte = 0x02
	ComQuery            byte = 0x03
	ComFieldList        byte = 0x04
	ComStatistics       byte = 0x09
	ComProcessKill      byte = 0x0c
	ComPing             byte = 0x0e
	ComChangeUser       byte = 0x11
	ComStmtPrepare      byte = 0x16
	ComStmtExecute      byte = 0x17
	ComStmtSendLongData byte = 0x18
	ComStmtClose        byte = 0x19
	ComStmtReset        byte = 0x1a
	ComSetOption        byte = 0x1b
	ComStmtFetch        byte = 0x1c
	ComResetConnection  byte = 0x1f
)

// Packet headers.
const (
	HeaderOK          byte = 0x00
	HeaderAuthMore    byte = 0x01
	HeaderLocalInfile byte = 0xfb
	HeaderEOF         byte = 0xfe
	HeaderERR         byte = 0xff
)

// Authentication plugins.
const (
	PluginNative      = "mysql_native_password"
	PluginCachingSHA2 = "caching_sha2_password"
	PluginClearText   = "mysql_clear_password"
)

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
	r := Reader{b: p}
	if v := r.Byte(); v != 10 {
		if r.err != nil {
			return r.err
		}
		return ErrMalformed
	}
	h.ServerVersion = string(r.NulString())
	h.ConnectionID = r.Uint32()
	part1 := r.Bytes(8)
	r.Byte()
	h.Capabilities = uint32(r.Uint16())
	if len(r.b) == 0 {
		if r.err != nil {
			return r.err
		}
		h.Scramble = part1
		return nil
	}
	h.Collation = r.Byte()
	h.Status = r.Uint16()
	h.Capabilities |= uint32(r.Uint16()) << 16
	authLen := int(r.Byte())
	r.Bytes(10)
	if r.err != nil {
		return r.err
	}
	scramble := append([]byte(nil), part1...)
	if h.Capabilities&CapSecureConnection != 0 {
		n := max(13, authLen-8)
		part2 := r.Bytes(n)
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
	if h.Capabilities&CapPluginAuth != 0 {
		h.AuthPlugin = string(r.NulStringOrEOF())
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
	r := Reader{b: p}
	h.Capabilities = r.Uint32()
	if r.err != nil {
		return r.err
	}
	if h.Capabilities&CapProtocol41 == 0 {
		return ErrOldProtocol
	}
	h.MaxPacket = r.Uint32()
	h.Collation = r.Byte()
	r.Bytes(23)
	if r.err != nil {
		return r.err
	}
	if len(r.b) == 0 && h.Capabilities&CapSSL != 0 {
		h.SSLRequest = true
		return nil
	}
	h.User = string(r.NulString())
	switch {
	case h.Capabilities&CapPluginAuthLenenc != 0:
		h.AuthResponse = r.LenEncBytes()
	case h.Capabilities&CapSecureConnection != 0:
		h.AuthResponse = r.Bytes(int(r.Byte()))
	default:
		h.AuthResponse = r.NulString()
	}
	if r.err != nil {
		return r.err
	}
	if h.Capabilities&CapConnectWithDB != 0 && len(r.b) > 0 {
		h.Database = string(r.NulStringOrEOF())
	}
	if h.Capabilities&CapPluginAuth != 0 && len(r.b) > 0 {
		h.AuthPlugin = string(r.NulStringOrEOF())
	}
	if h.Capabilities&CapConnectAttrs != 0 && len(r.b) > 0 {
		attrs := Reader{b: r.LenEncBytes()}
		if r.err != nil {
			return r.err
		}
		for len(attrs.b) > 0 && attrs.err == nil {
			k := attrs.LenEncBytes()
			v := attrs.LenEncBytes()
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
	case h.Capabilities&CapPluginAuthLenenc != 0:
		dst = AppendLenEnc(dst, uint64(len(h.AuthResponse)))
		dst = append(dst, h.AuthResponse...)
	case h.Capabilities&CapSecureConnection != 0:
		dst = append(dst, byte(len(h.AuthResponse)))
		dst = append(dst, h.AuthResponse...)
	default:
		dst = append(dst, h.AuthResponse...)
		dst = append(dst, 0)
	}
	if h.Capabilities&CapConnectWithDB != 0 {
		dst = append(dst, h.Database...)
		dst = append(dst, 0)
	}
	if h.Capabilities&CapPluginAuth != 0 {
		dst = append(dst, h.AuthPlugin...)
		dst = append(dst, 0)
	}
	if h.Capabilities&CapConnectAttrs != 0 {
		var kv []byte
		for k, v := range h.Attributes {
			kv = AppendLenEncString(kv, k)
			kv = AppendLenEncString(kv, v)
		}
		dst = AppendLenEnc(dst, uint64(len(kv)))
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
	r := Reader{b: p}
	if h := r.Byte(); h != HeaderOK && h != HeaderEOF {
		return ok, ErrMalformed
	}
	ok.AffectedRows, _ = r.LenEnc()
	ok.LastInsertID, _ = r.LenEnc()
	ok.Status = r.Uint16()
	ok.Warnings = r.Uint16()
	if r.err != nil {
		return ok, r.err
	}
	if caps&CapSessionTrack != 0 {
		if len(r.b) > 0 {
			ok.Info = r.LenEncBytes()
		}
		if ok.Status&StatusSessionStateChange != 0 && len(r.b) > 0 {
			ok.SessionState = r.LenEncBytes()
		}
	} else {
		ok.Info = r.Rest()
	}
	return ok, r.err
}

// StripSessionState makes an OK payload p, sent by a server under
// CLIENT_SESSION_TRACK, into the one the server sends a client without it:
// SERVER_SESSION_STATE_CHANGED is cleared in place and n is the length of
// that payload, a prefix of p (the session-state information, and an empty
// info string that only announced it, cut off). Both layouts store a
// non-empty info string length-encoded (MySQL's and MariaDB's
// net_send_ok). ok is false when p is not a well-formed OK; p is then
// unchanged.
func StripSessionState(p []byte) (n int, ok bool) {
	r := Reader{b: p}
	if h := r.Byte(); h != HeaderOK && h != HeaderEOF {
		return 0, false
	}
	r.LenEnc()
	r.LenEnc()
	at := len(p) - len(r.b)
	st := r.Uint16()
	r.Uint16()
	if r.err != nil {
		return 0, false
	}
	n = len(p) - len(r.b)
	if st&StatusSessionStateChange == 0 {
		return len(p), true
	}
	if len(r.b) > 0 {
		if info := r.LenEncBytes(); r.err != nil {
			return 0, false
		} else if len(info) > 0 {
			n = len(p) - len(r.b)
		}
	}
	binary.LittleEndian.PutUint16(p[at:], st&^StatusSessionStateChange)
	return n, true
}

// AppendOK appends an OK payload for a client with capabilities caps.
func AppendOK(dst []byte, caps uint32, hdr byte, affected, lastID uint64, status, warnings uint16) []byte {
	dst = append(dst, hdr)
	dst = AppendLenEnc(dst, affected)
	dst = AppendLenEnc(dst, lastID)
	dst = binary.LittleEndian.AppendUint16(dst, status&^StatusSessionStateChange)
	dst = binary.LittleEndian.AppendUint16(dst, warnings)
	if caps&CapSessionTrack != 0 {
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
	r := Reader{b: p}
	if r.Byte() != HeaderEOF || len(p) >= 9 {
		return EOF{}, ErrMalformed
	}
	e := EOF{Warnings: r.Uint16(), Status: r.Uint16()}
	return e, r.err
}

func AppendEOF(dst []byte, status uint16) []byte {
	dst = append(dst, HeaderEOF, 0, 0)
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
	r := Reader{b: p}
	if r.Byte() != HeaderERR {
		return ERR{}, ErrMalformed
	}
	e := ERR{Code: r.Uint16()}
	if r.err != nil {
		return e, r.err
	}
	if len(r.b) >= 6 && r.b[0] == '#' {
		e.State = string(r.b[1:6])
		r.b = r.b[6:]
	}
	e.Message = string(r.Rest())
	return e, nil
}

func AppendERR(dst []byte, code uint16, state, msg string) []byte {
	dst = append(dst, HeaderERR)
	dst = binary.LittleEndian.AppendUint16(dst, code)
	if len(state) != 5 {
		state = "HY000"
	}
	dst = append(dst, '#')
	dst = append(dst, state...)
	return append(dst, msg...)
}

// IsTerminator reports whether a packet payload ends a row stream: an EOF
// packet, or an OK with an 0xfe header under CLIENT_DEPRECATE_EOF. A row
// can start with 0xfe only if it is at least 16 MiB long (a lenenc of 8
// bytes), and an old-style EOF is shorter than 9 bytes.
func IsTerminator(first byte, length int, deprecateEOF bool) bool {
	if first != HeaderEOF {
		return false
	}
	if deprecateEOF {
		return length < MaxChunk
	}
	return length < 9
}

// StatusOf reads the status flags of a terminator or OK packet.
func StatusOf(p []byte, caps uint32) (uint16, bool) {
	st, _, ok := StatusWarningsOf(p, caps)
	return st, ok
}

// StatusWarningsOf is StatusOf with the warning count the OK or EOF
// carries.
func StatusWarningsOf(p []byte, caps uint32) (status, warnings uint16, ok bool) {
	if len(p) == 0 {
		return 0, 0, false
	}
	if p[0] == HeaderEOF && len(p) < 9 && caps&CapDeprecateEOF == 0 {
		e, err := DecodeEOF(p)
		return e.Status, e.Warnings, err == nil
	}
	o, err := DecodeOK(p, caps)
	return o.Status, o.Warnings, err == nil
}

// WriteResultSet writes a result set whose column definitions (cols) and
// rows are payloads as a server sends them: the column count, the
// definitions, an EOF unless CLIENT_DEPRECATE_EOF, the rows, and the
// terminator with status. write sends one payload; buf is scratch space
// for the payloads made here.
func WriteResultSet(buf []byte, caps uint32, status uint16, cols, rows [][]byte, write func(payload []byte) error) error {
	deof := caps&CapDeprecateEOF != 0
	if err := write(AppendLenEnc(buf[:0], uint64(len(cols)))); err != nil {
		return err
	}
	for _, c := range cols {
		if err := write(c); err != nil {
			return err
		}
	}
	if !deof {
		if err := write(AppendEOF(buf[:0], status)); err != nil {
			return err
		}
	}
	for _, r := range rows {
		if err := write(r); err != nil {
			return err
		}
	}
	if deof {
		return write(AppendOK(buf[:0], caps, HeaderEOF, 0, 0, status, 0))
	}
	return write(AppendEOF(buf[:0], status))
}

// AppendTextColumn appends the definition of a text column named name in
// collation, as the proxy's own one-value answers (SHOW switchyard.*)
// describe theirs.
func AppendTextColumn(b []byte, name string, collation uint8) []byte {
	b = AppendLenEncString(b, "def")
	b = AppendLenEncString(b, "") // schema
	b = AppendLenEncString(b, "") // table
	b = AppendLenEncString(b, "") // org_table
	b = AppendLenEncString(b, name)
	b = AppendLenEncString(b, "") // org_name
	b = append(b, 0x0c)
	b = append(b, collation, 0)
	b = append(b, 0, 0, 1, 0) // column length 65536
	b = append(b, 0xfd)       // MYSQL_TYPE_VAR_STRING
	b = append(b, 0, 0, 0x1f) // flags; decimals (31: not fixed)
	return append(b, 0, 0)    // filler
}
