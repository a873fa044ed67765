package mysqlwire

import (
	"bytes"
	"testing"

	"github.com/switchyard/switchyard/wire/mysqlproto"
)

func TestDecodeExecute(t *testing.T) {
	base := []byte{mysqlproto.ComStmtExecute, 1, 0, 0, 0, 0, 1, 0, 0, 0}
	if pos, types, err := decodeExecute(base, 0); err != nil || pos != 0 || types != nil {
		t.Fatal(pos, types, err)
	}
	p := append(append([]byte{}, base...), 0x00, 1, 0xfd, 0, 0x08, 0, 'x')
	pos, types, err := decodeExecute(p, 2)
	if err != nil || pos != 11 || !bytes.Equal(types, []byte{0xfd, 0, 0x08, 0}) {
		t.Fatal(pos, types, err)
	}
	p = append(append([]byte{}, base...), 0x00, 0)
	if pos, types, err := decodeExecute(p, 2); err != nil || pos != 11 || types != nil {
		t.Fatal(pos, types, err)
	}
	for _, bad := range [][]byte{base[:9], append(append([]byte{}, base...), 0), append(append([]byte{}, base...), 0, 1, 0xfd)} {
		if _, _, err := decodeExecute(bad, 2); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}
