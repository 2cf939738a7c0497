import java.io.*;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/** A minimal RESP client: pipelined commands out, replies read back in order. */
final class Resp implements Closeable {
    private final Socket socket;
    private final OutputStream out;
    private final DataInputStream in;

    Resp(int port) throws IOException {
        socket = new Socket("127.0.0.1", port);
        socket.setTcpNoDelay(true);
        out = new BufferedOutputStream(socket.getOutputStream(), 1 << 16);
        in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 1 << 16));
    }

    /** Queues one command (flush() sends). */
    void send(byte[]... args) throws IOException {
        out.write(('*' + Integer.toString(args.length) + "\r\n").getBytes(StandardCharsets.US_ASCII));
        for (byte[] arg : args) {
            out.write(('$' + Integer.toString(arg.length) + "\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(arg);
            out.write('\r');
            out.write('\n');
        }
    }

    void send(String... args) throws IOException {
        byte[][] bytes = new byte[args.length][];
        for (int i = 0; i < args.length; i++) bytes[i] = args[i].getBytes(StandardCharsets.UTF_8);
        send(bytes);
    }

    void flush() throws IOException {
        out.flush();
    }

    /** Reads one reply: String, Long, byte[] (bulk), Object[] (array), or null. */
    Object read() throws IOException {
        int type = in.read();
        String line = readLine();
        switch (type) {
            case '+': return line;
            case '-': throw new IOException("redis error: " + line);
            case ':': return Long.parseLong(line);
            case '$': {
                int n = Integer.parseInt(line);
                if (n < 0) return null;
                byte[] data = new byte[n];
                in.readFully(data);
                in.readFully(new byte[2]);
                return data;
            }
            case '*': {
                int n = Integer.parseInt(line);
                if (n < 0) return null;
                Object[] items = new Object[n];
                for (int i = 0; i < n; i++) items[i] = read();
                return items;
            }
            default: throw new IOException("bad reply type " + type);
        }
    }

    Object call(String... args) throws IOException {
        send(args);
        flush();
        return read();
    }

    private String readLine() throws IOException {
        StringBuilder sb = new StringBuilder();
        int c;
        while ((c = in.read()) != '\r') {
            if (c < 0) throw new EOFException();
            sb.append((char) c);
        }
        in.read();
        return sb.toString();
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
